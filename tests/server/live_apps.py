"""The WSGI applications of the live server tests, by name, for both servers under test.

The suites of tests/server/ that run over sockets run twice: against the built-in server, in
the test's own process, and against a real gunicorn with microwsgi's worker class. So their
applications live here, importable by both, and what a test observes inside an application
goes through a file: `record(event)` appends a line to the events file in the directory named
by MICROWSGI_LIVE_DIR, which the test reads. Under gunicorn one server serves every test that
shares its options: `app` runs whichever application the test chose (written to that same
directory by the `live` fixture, conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

from server_live import EVENTS, echo_app, hello_app

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

APPS: dict[str, WSGIApp] = {"hello": hello_app, "echo": echo_app}
DIR_VARIABLE = "MICROWSGI_LIVE_DIR"
CHOSEN = "app"  # the file naming the application a shared server runs
WAIT = 10.0  # how long an application waits for another request, at most


def live_dir() -> Path:
    return Path(os.environ[DIR_VARIABLE])


def record(event: str) -> None:
    """Tell the test something happened inside the application."""
    with (live_dir() / EVENTS).open("a") as events:
        events.write(event + "\n")


def recorded() -> list[str]:
    path = live_dir() / EVENTS
    return path.read_text().splitlines() if path.exists() else []


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The application a shared server runs: the one the current test chose."""
    return APPS[(live_dir() / CHOSEN).read_text()](environ, start_response)


def named(name: str) -> Callable[[WSGIApp], WSGIApp]:
    def register(application: WSGIApp) -> WSGIApp:
        APPS[name] = application
        return application

    return register


def query(environ: dict[str, Any]) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(environ["QUERY_STRING"]).items()}


def text(start_response: Callable[..., Any], body: bytes = b"ok") -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@named("ok")
def ok_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    return text(start_response)


@named("environ")
def environ_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    shown = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
    shown["body"] = environ["wsgi.input"].read().decode("latin-1")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(shown).encode()]


@named("recorder")
def recorder_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Records every path it serves (what a smuggled request would reach)."""
    record(environ["PATH_INFO"])
    environ["wsgi.input"].read()
    return text(start_response)


@named("body-failure")
def body_failure_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    record("reading")
    try:
        environ["wsgi.input"].read()
    except Exception:
        record("failed")
        raise
    return text(start_response, b"unreachable")


class Endless:
    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield b"x" * 65536

    def close(self) -> None:
        record("closed")


@named("endless")
def endless_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Endless() if environ["PATH_INFO"] == "/endless" else [b"short"]


@named("reads-past-body")
def reads_past_body_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    stream = environ["wsgi.input"]
    first = stream.read(100)
    assert stream.read(100) == b"" and stream.readline() == b""
    return text(start_response, first)


@named("reads-if-asked")
def reads_if_asked_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    body = environ["wsgi.input"].read() if environ["PATH_INFO"] == "/read" else b"ignored"
    return text(start_response, body)


@named("no-read")
def no_read_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    return text(start_response, b"did not read")


@named("streamed")
def streamed_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one "
    yield b""
    yield b"two"


@named("unsized")
def unsized_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"a", b"b"])


@named("write")
def write_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned"]


@named("exc-info-before")
def exc_info_before_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("boom")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced"]


@named("exc-info-after")
def exc_info_after_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial")
    try:
        raise ValueError("boom")
    except ValueError:
        start_response("500 Oops", [], sys.exc_info())  # re-raises
    return [b"never"]


@named("start-twice")
def start_twice_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [])
    start_response("201 Created", [])
    return [b""]


@named("boom")
def boom_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    return text(start_response, b"fine")


@named("late-failure")
def late_failure_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first"
    raise RuntimeError("late")


@named("short-body")
def short_body_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"short", b""]


class Closing:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        if self.fail:
            raise RuntimeError("iteration failed")
        yield b"ok"

    def close(self) -> None:
        record("closed failed" if self.fail else "closed ok")


@named("closing")
def closing_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Closing:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(environ["PATH_INFO"] == "/fail")


@named("file")
def file_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """?path=FILE&skip=N&status=S&length=L: FILE from byte N through wsgi.file_wrapper."""
    asked = query(environ)
    handle = open(asked["path"], "rb")  # noqa: SIM115 - closed by the wrapper
    handle.seek(int(asked.get("skip", "0")))
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in asked:
        headers.append(("Content-Length", asked["length"]))
    start_response(asked.get("status", "200 OK"), headers)
    return environ["wsgi.file_wrapper"](handle, 8192)


class ReadOnly:
    """read() only: no fileno, no close."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self.data.read(size)


@named("other-readers")
def other_readers_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    readable: Any
    if path == "/pipe":
        read_end, write_end = os.pipe()
        os.write(write_end, b"piped")
        os.close(write_end)
        readable = os.fdopen(read_end, "rb")
    elif path == "/memory":
        readable = io.BytesIO(b"in memory")
    else:
        readable = ReadOnly(b"plain")
    start_response("200 OK", [])
    return environ["wsgi.file_wrapper"](readable, 4)


def validated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/echo":
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
    elif path == "/lines":
        body = b"".join(list(stream))
    else:
        body = b"hello"
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/write":
        write(b"by write ")
    return [body]


APPS["validated"] = validator(validated)


@named("together")
def together_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answers once two requests are inside the application at the same time."""
    record("inside")
    deadline = time.monotonic() + WAIT
    while recorded().count("inside") < 2:
        if time.monotonic() > deadline:
            return text(start_response, b"alone")
        time.sleep(0.01)
    return text(start_response, b"together")


@named("no-start-response")
def no_start_response_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    return [b"no start_response"]


@named("status-without-code")
def status_without_code_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("OK", [])
    return [b"bad status"]


@named("status-not-str")
def status_not_str_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response(200, [])
    return [b"status not a str"]


@named("status-asked")
def status_asked_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """?status=S: start_response(S), whatever S is."""
    start_response(query(environ)["status"], [])
    return [b"the status asked"]


@named("exits")
def exits_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    if environ["PATH_INFO"] == "/exit":
        sys.exit(3)  # not an Exception: it passes the bridge, the serving thread must survive it
    return text(start_response)


@named("own-date-and-server")
def own_date_and_server_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Date", "Tue, 01 Jan 2030 00:00:00 GMT"), ("Server", "mine")])
    return [b"ok"]


@named("empty")
def empty_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [])
    return []


@named("empty-writes")
def empty_writes_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    write = start_response("200 OK", [("Content-Length", "4")])
    write(b"ab")
    write(b"")
    write(b"cd")
    return []


@named("small-reads")
def small_reads_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    stream = environ["wsgi.input"]
    pieces = [stream.read(10), stream.readline(), stream.read(70000)]
    pieces.append(stream.read())
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [b"".join(pieces)]


class FailingClose:
    def __iter__(self) -> Iterator[bytes]:
        yield b"body"

    def close(self) -> None:
        raise RuntimeError("close failed")


@named("failing-close")
def failing_close_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Length", "4")])
    return FailingClose()


@named("environ-key")
def environ_key_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """?key=K: answers with the environ's value for K."""
    return text(start_response, str(environ.get(query(environ)["key"])).encode())


@named("swallows-read-errors")
def swallows_read_errors_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """Turns a failed read of the body into an answer of its own, as a framework may."""
    with contextlib.suppress(Exception):
        environ["wsgi.input"].read()
    return text(start_response, b"not for a request that never arrived")


@named("big")
def big_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """/small: ok; /body: 20 MB in memory; /file?path=FILE: FILE through the file wrapper."""
    if environ["PATH_INFO"] == "/small":
        return text(start_response)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if environ["PATH_INFO"] == "/file":
        return environ["wsgi.file_wrapper"](open(query(environ)["path"], "rb"))
    return [bytes(20 * 1024 * 1024)]


def _flask_app() -> WSGIApp | None:
    try:
        import flask
    except ImportError:  # pragma: no cover - flask is in the test extras
        return None
    served = flask.Flask("served")

    @served.post("/items/<name>")
    def item(name: str) -> Any:
        return {"name": name, "got": flask.request.get_json(), "q": flask.request.args["q"]}

    @served.get("/stream")
    def stream() -> Any:
        return flask.Response(iter(["a", "b"]), mimetype="text/plain")

    return served  # type: ignore[return-value]


def _microwsgi_app() -> WSGIApp:
    from microwsgi import Server

    served = Server()

    @served.register("POST /echo/:name")
    def echo(request: dict[str, Any]) -> Any:
        return {"name": request["params"]["name"], "json": request["json"]}

    return served


flask_app = _flask_app()
if flask_app is not None:
    APPS["flask"] = flask_app
APPS["microwsgi"] = _microwsgi_app()
