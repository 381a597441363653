"""Helpers for the live server tests: a server on a free 127.0.0.1 port, a raw-bytes client,
and `LiveServer`, what the `live` fixture (conftest.py) gives a test.

The client speaks HTTP/1.1 by hand (bytes out, a small response reader in) so tests can send
exactly the malformed, pipelined or half-finished requests they are about.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn_process import wait_until
from tools import has_ipv6_loopback

from microwsgi.server import DevServer, Engine

TIMEOUT = 5.0
WAIT = 10.0  # a guard against hanging in tests that wait for events, never asserted


HAS_IPV6 = has_ipv6_loopback()


def hello_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = b'{"message": "hello"}'
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answers with the request body, and the method and path in headers."""
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("X-Path", environ["PATH_INFO"].encode("latin-1").decode("utf-8", "replace")),
            ("X-Method", environ["REQUEST_METHOD"]),
        ],
    )
    return [body]


@contextlib.contextmanager
def serving(
    app: Callable[..., Any], host: str = "127.0.0.1", **options: Any
) -> Iterator[DevServer]:
    options.setdefault("access_log", False)
    server = DevServer(app, host, 0, **options).start()
    try:
        yield server
    finally:
        server.shutdown()


@contextlib.contextmanager
def running(engine: Engine) -> Iterator[Engine]:
    """Run `engine` in a background thread; stop it (and wait for it) at the end."""
    thread = threading.Thread(target=engine.run, name="test-engine-loop", daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.stop()
        assert engine.wait(30), "the engine did not stop"
        thread.join(5)


def listening(host: str = "127.0.0.1", family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket listening on a free port of `host`."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(64)
    return sock


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Client:
    """One raw connection to the server under test (TCP, or a unix socket given as `path`)."""

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        timeout: float = TIMEOUT,
        *,
        path: str | None = None,
    ) -> None:
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, data: bytes, head: bool = False) -> Response:
        self.send(data)
        return self.response(head=head)

    def response(self, head: bool = False) -> Response:
        line = self.rfile.readline()
        if not line:
            raise EOFError("connection closed before a response")
        version, status, reason = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        assert version == "HTTP/1.1", line
        headers = []
        while (field := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = field.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        response = Response(int(status), reason, headers, b"")
        code = response.status
        if head or code in (204, 304) or 100 <= code < 200:
            return response
        if (response.header("Transfer-Encoding") or "").lower() == "chunked":
            response.body = self._chunked()
        elif (length := response.header("Content-Length")) is not None:
            response.body = self.rfile.read(int(length))
        else:
            response.body = self.rfile.read()
        return response

    def _chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                return body
            body += self.rfile.read(size)
            assert self.rfile.read(2) == b"\r\n"

    def closed(self) -> bool:
        """True when the server has closed the connection (EOF or reset) within the timeout."""
        try:
            return self.rfile.read(1) == b""
        except ConnectionResetError:
            return True


def get(path: str = "/", host: str = "t", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


class App:
    """Records which thread answered which path; a path in `gates` waits for its event."""

    def __init__(self, *blocking: str) -> None:
        self.gates = {path: threading.Event() for path in blocking}
        self.entered = {path: threading.Event() for path in blocking}
        self.served: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        self.served.append((path, threading.current_thread().name))
        if path in self.gates:
            self.entered[path].set()
            assert self.gates[path].wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    def order(self) -> list[str]:
        return [path for path, _ in self.served]

    def thread_of(self, path: str) -> str:
        return next(thread for served, thread in self.served if served == path)


def port_of(client: Client) -> int:
    return int(client.sock.getsockname()[1])


def pipeline(prefix: str, count: int) -> bytes:
    return b"".join(get(f"/{prefix}/{i}") for i in range(count))


# What live_apps.py's applications record in MICROWSGI_LIVE_DIR.
EVENTS = "events"


@dataclass
class LiveServer:
    """A server under test: where it listens, what its applications recorded, what it logged."""

    kind: str  # "builtin" or "gunicorn"
    port: int
    directory: Path  # MICROWSGI_LIVE_DIR of its applications
    read_log: Callable[[], str]

    def events(self) -> list[str]:
        path = self.directory / EVENTS
        return path.read_text().splitlines() if path.exists() else []

    def wait_event(self, event: str) -> None:
        wait_until(lambda: event in self.events(), WAIT, f"the application to record {event!r}")

    def logged(self, text: str) -> None:
        """Wait until the server's log (the test's capture, or gunicorn's error log) says it."""
        wait_until(lambda: text in self.read_log(), WAIT, f"{text!r} in the server's log")


StartLive = Callable[..., LiveServer]


StartLive = Callable[..., LiveServer]
