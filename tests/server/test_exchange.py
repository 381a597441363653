"""PEP 3333 at its edges, through the real server: what an application may get wrong, what a
client may do mid-answer, and how bodies are read and files sent."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from server_live import WAIT, Client, get, serving

from microwsgi.server import exchange

BIG = 20 * 1024 * 1024


def simple(body: bytes = b"ok", headers: list[tuple[str, str]] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers or [("Content-Type", "text/plain")])
        return [body]

    return app


@pytest.mark.parametrize(
    "app",
    [
        lambda environ, start_response: [b"no start_response"],
        lambda environ, start_response: start_response("OK", []) or [b"bad status"],
        lambda environ, start_response: start_response(200, []) or [b"status not a str"],
    ],
    ids=["no-start-response", "status-without-code", "status-not-str"],
)
def test_an_app_breaking_pep_3333_gets_a_500_and_the_server_goes_on(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(app) as server:
        with Client(server.port) as client:
            response = client.request(get())
            assert response.status == 500 and response.header("Connection") == "close"
            assert response.body == b"Internal Server Error\n"
        with Client(server.port) as client:
            assert client.request(get()).status == 500
    assert "error handling GET /" in caplog.text


def test_an_app_exiting_is_logged_and_only_its_connection_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/exit":
            sys.exit(3)  # not an Exception: it passes the bridge, the worker must survive it
        return simple()(environ, start_response)  # type: ignore[no-any-return]

    with serving(app, threads=1) as server:
        with Client(server.port) as client:
            client.send(get("/exit"))
            assert client.closed()
        with Client(server.port) as client:  # the only worker thread is still there
            assert client.request(get()).body == b"ok"
    assert "unexpected error serving 127.0.0.1" in caplog.text


def test_date_and_server_from_the_app_are_kept_not_doubled() -> None:
    headers = [("Date", "Tue, 01 Jan 2030 00:00:00 GMT"), ("Server", "mine")]
    with serving(simple(headers=headers)) as server, Client(server.port) as client:
        response = client.request(get())
    assert [v for k, v in response.headers if k == "Date"] == [headers[0][1]]
    assert [v for k, v in response.headers if k == "Server"] == ["mine"]


def test_an_empty_body_gets_content_length_zero() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return []

    with serving(app) as server, Client(server.port) as client:
        response = client.request(get())
        assert response.header("Content-Length") == "0" and response.body == b""
        assert client.request(get()).status == 200


def test_empty_writes_after_the_headers_send_nothing() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "4")])
        write(b"ab")
        write(b"")
        write(b"cd")
        return []

    with serving(app) as server, Client(server.port) as client:
        assert client.request(get()).body == b"abcd"


def test_small_reads_of_a_large_body_see_every_byte() -> None:
    body = bytes(range(256)) * 400  # 100 kB, more than one piece from the parser

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        pieces = [stream.read(10), stream.readline(), stream.read(70000)]
        pieces.append(stream.read())
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"".join(pieces)]

    with serving(app) as server, Client(server.port) as client:
        head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        assert client.request(head + body).body == body


def test_an_unread_chunked_body_past_the_drain_cap_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "DRAIN_LIMIT", 1000)
    chunk = b"800\r\n" + b"x" * 0x800 + b"\r\n"
    with serving(simple()) as server, Client(server.port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 4)
        response = client.response()
        # The length was unknown when the answer went out; draining it then hit the cap.
        assert response.body == b"ok" and client.closed()


def test_a_failing_close_of_the_iterable_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Body:
        def __iter__(self) -> Any:
            yield b"body"

        def close(self) -> None:
            raise RuntimeError("close failed")

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "4")])
        return Body()

    with serving(app) as server, Client(server.port) as client:
        assert client.request(get("/c")).body == b"body"
        assert client.request(get("/c")).body == b"body"
    assert "error closing the answer to GET /c" in caplog.text


def test_many_header_names_all_reach_the_environ() -> None:
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ)
        return simple()(environ, start_response)  # type: ignore[no-any-return]

    with serving(app) as server, Client(server.port) as client:
        for batch in range(7):  # past the 512 names the environ-key cache keeps
            names = [f"X-Many-{batch}-{i}" for i in range(90)]
            extra = "".join(f"{name}: {i}\r\n" for i, name in enumerate(names))
            assert client.request(get(extra=extra)).status == 200
            assert seen[-1][f"HTTP_X_MANY_{batch}_89"] == "89"


def test_a_file_wrapper_honours_a_shorter_content_length(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789" * 10)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "5")])
        return environ["wsgi.file_wrapper"](path.open("rb"))

    with serving(app) as server, Client(server.port) as client:
        assert client.request(get()).body == b"01234"
        assert client.request(get()).body == b"01234"


@pytest.mark.parametrize("source", ["pipe", "no-close"])
def test_a_file_wrapper_over_other_readers_is_iterated(source: str) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if source == "pipe":
            read_end, write_end = os.pipe()
            os.write(write_end, b"piped")
            os.close(write_end)
            readable: Any = os.fdopen(read_end, "rb")
        else:

            class Reader:  # read() only: no fileno, no close
                data = io.BytesIO(b"plain")

                def read(self, size: int) -> bytes:
                    return self.data.read(size)

            readable = Reader()
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](readable)

    with serving(app) as server, Client(server.port) as client:
        assert client.request(get()).body == (b"piped" if source == "pipe" else b"plain")


def _sparse_file(path: Path) -> Path:
    with path.open("wb") as f:
        f.truncate(BIG)
    return path


@pytest.mark.parametrize("kind", ["body", "sendfile"])
def test_a_client_that_stops_reading_costs_one_io_timeout(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "microwsgi.server")
    big = _sparse_file(tmp_path / "big.bin")
    sent = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/small":
            return simple()(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if kind == "sendfile":
            return environ["wsgi.file_wrapper"](big.open("rb"))
        return [bytes(BIG)]

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "client went away" in record.getMessage():
                sent.set()

    watch = Watch()
    logging.getLogger("microwsgi.server").addHandler(watch)
    try:
        with serving(app, io_timeout=0.2) as server, Client(server.port) as stuck:
            stuck.send(get("/big"))  # and never read the answer
            assert sent.wait(WAIT)
            with Client(server.port) as other:
                assert other.request(get("/small")).body == b"ok"
    finally:
        logging.getLogger("microwsgi.server").removeHandler(watch)


def test_a_client_resetting_mid_head_is_dropped_and_the_server_goes_on() -> None:
    with serving(simple()) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        with Client(server.port) as client:
            assert client.request(get()).body == b"ok"


def test_a_client_half_closing_mid_request_gets_no_answer() -> None:
    with serving(simple()) as server, Client(server.port) as client:
        client.send(b"GET / HT")
        client.sock.shutdown(socket.SHUT_WR)
        assert client.rfile.read() == b""  # nobody is listening for a 400: just closed


def test_a_body_that_stops_coming_is_a_408_even_if_the_app_swallows_the_error() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # A framework may turn any read error into an answer of its own.
        with contextlib.suppress(Exception):
            environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"not for a request that never arrived"]

    with serving(app, io_timeout=0.3) as server, Client(server.port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        response = client.response()
        assert response.status == 408 and response.header("Connection") == "close"
        assert response.body == b"request body not received in time\n"
