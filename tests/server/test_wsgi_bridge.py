"""Tests for microwsgi.server.wsgi: PEP 3333 through the real server, in raw bytes.

The environ, `wsgi.input` bounded to the body, `100 Continue` only when the app reads,
`start_response` with `exc_info`, `write()`, `close()`, `wsgi.file_wrapper`, app errors,
`wsgiref.validate.validator`-wrapped apps and a Flask app; each against the built-in server and
against gunicorn with microwsgi's worker (the `live` fixture, its apps in live_apps.py).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from server_live import Client, StartLive, get, serving
from tools import require_extra

from microwsgi.server import exchange
from microwsgi.server.wsgi import InputStream


def environ_for(live: StartLive, raw: bytes) -> dict[str, Any]:
    server = live("environ")
    with Client(server.port) as client:
        response = client.request(raw)
        assert response.status == 200, response
        env: dict[str, Any] = json.loads(response.body)
        env["_port"] = server.port
        env["_client_port"] = client.sock.getsockname()[1]
        return env


def test_environ_is_complete(live: StartLive) -> None:
    env = environ_for(
        live,
        b"POST /a%20b/%E2%82%AC?x=1&y=%20 HTTP/1.1\r\nHost: example.org:8080\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 5\r\nX-Multi: 1\r\nX-Multi: 2\r\n"
        b"Cookie: a=1\r\nCookie: b=2\r\n\r\nhello",
    )
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    # PEP 3333: decoded bytes, each as one latin-1 character.
    assert env["PATH_INFO"] == "/a b/\u00e2\u0082\u00ac"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/a%20b/%E2%82%AC?x=1&y=%20"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert env["HTTP_HOST"] == "example.org:8080"
    assert env["HTTP_X_MULTI"] == "1, 2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(env["_port"])
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(env["_client_port"])
    assert env["wsgi.version"] == [1, 0]  # a tuple, through JSON
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["body"] == "hello"


def test_absent_body_headers_are_absent_from_the_environ(live: StartLive) -> None:
    env = environ_for(live, get("/plain"))
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env
    assert env["QUERY_STRING"] == "" and env["body"] == ""


def test_absolute_form_target_uses_its_own_host(live: StartLive) -> None:
    env = environ_for(
        live, b"GET http://other.example:81/p/q?z=1 HTTP/1.1\r\nHost: ignored\r\n\r\n"
    )
    assert env["PATH_INFO"] == "/p/q" and env["QUERY_STRING"] == "z=1"
    assert env["HTTP_HOST"] == "other.example:81"


@pytest.mark.parametrize(
    ("target", "path", "query", "host"),
    [
        ("http://user:pass@host:8080/", "/", "", "host:8080"),
        ("http://user@evil.example/p", "/p", "", "evil.example"),
        ("https://[::1]:8443/a%20b?x=1#frag", "/a b", "x=1", "[::1]:8443"),
        ("/a?page=1#x", "/a", "page=1", "t"),
        ("/a#x?y=1", "/a", "", "t"),
        ("//x/y?z", "//x/y", "z", "t"),
    ],
)
def test_targets_reach_the_environ_normalised_as_gunicorn_does(
    live: StartLive, target: str, path: str, query: str, host: str
) -> None:
    # RFC 9112 §3.2: the fragment is no part of a target; userinfo never reaches HTTP_HOST.
    env = environ_for(live, f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_HOST"]) == (path, query, host)
    assert env["RAW_URI"] == env["REQUEST_URI"] == target


def test_asterisk_form_reaches_the_app_only_for_options(live: StartLive) -> None:
    env = environ_for(live, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
    assert env["REQUEST_METHOD"] == "OPTIONS" and env["PATH_INFO"] == "*"


def test_connect_reaches_the_app_with_an_empty_path_and_closes(live: StartLive) -> None:
    with Client(live("environ").port) as client:
        response = client.request(b"CONNECT example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n")
        env = json.loads(response.body)
        assert env["PATH_INFO"] == "" and env["REQUEST_METHOD"] == "CONNECT"
        assert response.header("Connection") == "close" and client.closed()


REFUSED = {
    "token-colon-target": (b"GET a:../../etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "authority-form-on-get": (b"GET example.com:443 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "asterisk-on-delete": (b"DELETE * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "absolute-bad-host": (b'GET http://ev<il>"x/p HTTP/1.1\r\nHost: t\r\n\r\n', 400),
    "absolute-open-bracket": (b"GET http://[::1 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "raw-utf8": (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "content-type-twice": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n"
        b"Content-Length: 0\r\n\r\n",
        400,
    ),
    "length-list": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 2\r\n\r\nok", 400),
    "expect-unknown": (
        b"POST / HTTP/1.1\r\nHost: t\r\nExpect: x\r\nContent-Length: 2\r\n\r\nok",
        417,
    ),
    "host-as-trailer": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\nHost: evil\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize(("raw", "status"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_shapes_get_their_status_and_close(
    live: StartLive, raw: bytes, status: int
) -> None:
    server = live("environ")
    with Client(server.port) as client:
        response = client.request(raw + get("/after"))
        assert response.status == status and response.header("Connection") == "close"
        assert client.closed()  # the pipelined request behind it is never read
    with Client(server.port) as other:
        assert other.request(get()).status == 200


def test_header_names_with_underscores_are_dropped(live: StartLive) -> None:
    env = environ_for(live, get(extra="X-Real-Ip: 1.1.1.1\r\nX_Real_Ip: 6.6.6.6\r\n"))
    assert env["HTTP_X_REAL_IP"] == "1.1.1.1"


def test_http_1_0_protocol(live: StartLive) -> None:
    with Client(live("environ").port) as client:
        env = json.loads(client.request(b"GET / HTTP/1.0\r\n\r\n").body)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def body_reader(body: bytes, piece: int = 3) -> InputStream:
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
    return InputStream(lambda: pieces.pop(0) if pieces else b"")


def test_input_stream_is_bounded_and_line_oriented() -> None:
    stream = body_reader(b"line one\nline two\nrest")
    assert stream.readline() == b"line one\n"
    assert stream.readline(4) == b"line"
    assert stream.read(2) == b" t"
    assert list(stream) == [b"wo\n", b"rest"]
    assert stream.read() == b"" and stream.read(10) == b"" and stream.readline() == b""
    assert body_reader(b"a\nb\nc").readlines() == [b"a\n", b"b\n", b"c"]
    assert body_reader(b"a\nb\nc").readlines(1) == [b"a\n"]
    assert body_reader(b"abcdef").read(None) == b"abcdef"


def test_reads_past_the_body_return_nothing_and_the_next_request_is_intact(
    live: StartLive,
) -> None:
    with Client(live("reads-past-body").port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" + get())
        assert client.response().body == b"abc"
        assert client.response().body == b""


def test_100_continue_is_sent_only_when_the_app_reads(live: StartLive) -> None:
    expect = b"Host: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    server = live("reads-if-asked")
    with Client(server.port) as client:
        client.send(b"POST /read HTTP/1.1\r\n" + expect)
        interim = client.response()
        assert interim.status == 100
        client.send(b"hello")
        assert client.response().body == b"hello"
    with Client(server.port) as client:
        client.send(b"POST /skip HTTP/1.1\r\n" + expect)
        final = client.response()
        assert final.status == 200 and final.body == b"ignored"
        # The body was never asked for, so the connection cannot be reused.
        assert final.header("Connection") == "close" and client.closed()


def test_unread_body_is_drained_before_keep_alive(live: StartLive) -> None:
    with Client(live("no-read").port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n" + b"x" * 10000)
        assert client.response().header("Connection") is None
        assert client.request(get()).body == b"did not read"


def test_unread_body_over_the_drain_cap_closes() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"no"]

    # A declared length past the cap (as it is: a compiled build cannot be patched), barely sent.
    length = exchange.DRAIN_LIMIT + 50_000
    with serving(app) as server, Client(server.port) as client:
        client.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % length + b"x" * 100
        )
        response = client.response()
        assert response.header("Connection") == "close" and client.closed()


def test_streamed_answer_without_length_is_chunked_and_head_has_no_body(
    live: StartLive,
) -> None:
    with Client(live("streamed").port) as client:
        response = client.request(get())
        assert response.header("Transfer-Encoding") == "chunked"
        assert response.body == b"one two"
        head = client.request(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", head=True)
        assert head.status == 200 and head.header("Transfer-Encoding") is None
        assert client.request(get()).body == b"one two"  # no stray body bytes in between


def test_http_1_0_answer_without_length_is_close_delimited(live: StartLive) -> None:
    with Client(live("unsized").port) as client:
        response = client.request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert response.body == b"ab" and response.header("Connection") == "close"


def test_write_callable_sends_before_the_iterable(live: StartLive) -> None:
    with Client(live("write").port) as client:
        assert client.request(get()).body == b"written returned"


def test_exc_info_replaces_the_answer_before_headers_are_sent(live: StartLive) -> None:
    with Client(live("exc-info-before").port) as client:
        response = client.request(get())
        assert (response.status, response.reason, response.body) == (500, "Oops", b"replaced")


def test_exc_info_after_headers_are_sent_closes_the_connection(live: StartLive) -> None:
    with Client(live("exc-info-after").port) as client:
        client.send(get())
        assert client.rfile.readline().startswith(b"HTTP/1.1 200")
        assert client.rfile.read().endswith(b"partial\r\n")  # no terminating chunk: aborted


def test_start_response_twice_without_exc_info_is_an_error(live: StartLive) -> None:
    with Client(live("start-twice").port) as client:
        assert client.request(get()).status == 500


def test_app_raising_before_start_response_gets_500_and_the_server_goes_on(
    live: StartLive,
) -> None:
    server = live("boom")
    with Client(server.port) as client:
        response = client.request(get("/boom"))
        assert response.status == 500 and b"boom" not in response.body
        assert response.header("Connection") == "close"
    with Client(server.port) as client:
        assert client.request(get("/ok")).body == b"fine"


def test_app_raising_mid_body_closes_the_connection_without_a_last_chunk(
    live: StartLive,
) -> None:
    with Client(live("late-failure").port) as client:
        client.send(get())
        assert client.rfile.readline().startswith(b"HTTP/1.1 200")
        rest = client.rfile.read()
        assert b"first" in rest and not rest.endswith(b"0\r\n\r\n")


def test_content_length_mismatch_closes_the_connection(live: StartLive) -> None:
    with Client(live("short-body").port) as client:
        client.send(get())
        assert client.rfile.readline().startswith(b"HTTP/1.1 200")
        assert client.rfile.read().endswith(b"short")


def test_close_is_called_on_success_and_on_error(live: StartLive) -> None:
    server = live("closing")
    with Client(server.port) as client:
        assert client.request(get("/ok")).body == b"ok"
    with Client(server.port) as client:
        assert client.request(get("/fail")).status == 500
    server.wait_event("closed failed")
    assert sorted(server.events()) == ["closed failed", "closed ok"]


def test_file_wrapper_sends_the_file(live: StartLive, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    (tmp_path / "blob").write_bytes(data)
    server = live("file")
    file_from_10 = get(f"/?path={tmp_path / 'blob'}&skip=10")
    with Client(server.port) as client:
        response = client.request(file_from_10)
        assert response.header("Content-Length") == str(len(data) - 10)
        assert response.body == data[10:]
        assert response.header("Connection") is None  # still keep-alive
        assert client.request(file_from_10).body == data[10:]
    with Client(server.port) as client:
        head = client.request(file_from_10.replace(b"GET", b"HEAD", 1), head=True)
        assert head.status == 200 and head.header("Content-Length") == str(len(data) - 10)
        assert client.request(file_from_10).body == data[10:]


def test_file_wrapper_on_304_sends_no_body(live: StartLive, tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"cached")
    not_modified = get(f"/?path={tmp_path / 'blob'}&status=304+Not+Modified")
    with Client(live("file").port) as client:
        assert client.request(not_modified).status == 304
        assert client.request(not_modified).status == 304  # no stray body bytes in between


def test_file_wrapper_over_a_non_file_is_iterated(live: StartLive) -> None:
    with Client(live("other-readers").port) as client:
        assert client.request(get("/memory")).body == b"in memory"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (get("/"), b"hello"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody", b"body"),
        (
            b"POST /lines HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\na\nb\n\r\n0\r\n\r\n",
            b"a\nb\n",
        ),
        (get("/write"), b"by write hello"),
        (b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", b""),
    ],
    ids=["get", "post", "chunked-lines", "write", "head"],
)
def test_validator_wrapped_app_through_the_real_server(
    live: StartLive, raw: bytes, expected: bytes
) -> None:
    with Client(live("validated").port) as client:
        response = client.request(raw, head=raw.startswith(b"HEAD"))
        assert response.status == 200 and response.body == expected
        assert client.request(get()).body == b"hello"


def test_flask_app_is_served(live: StartLive) -> None:
    require_extra("flask")  # live_apps serves a Flask app only where flask is installed
    with Client(live("flask").port) as client:
        response = client.request(
            b"POST /items/caf%C3%A9?q=1 HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'7\r\n{"a": 1\r\n1\r\n}\r\n0\r\n\r\n'
        )
        assert response.status == 200
        assert json.loads(response.body) == {"name": "caf\u00e9", "got": {"a": 1}, "q": "1"}
        assert client.request(get("/stream")).body == b"ab"
        assert client.request(get("/missing")).status == 404


def test_microwsgi_server_app_is_served(live: StartLive) -> None:
    with Client(live("microwsgi").port) as client:
        response = client.request(
            b"POST /echo/w%C3%B6rld HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 8\r\n\r\n{"a": 1}'
        )
        assert response.status == 200
        assert json.loads(response.body) == {"name": "w\u00f6rld", "json": {"a": 1}}
        assert client.request(get("/nowhere")).status == 404


def test_threads_serve_connections_concurrently(live: StartLive) -> None:
    server = live("together", threads=2)  # each answers once both are inside the app
    with Client(server.port) as one, Client(server.port) as two:
        one.send(get())
        two.send(get())
        assert one.response().body == two.response().body == b"together"


def test_server_still_answers_after_a_reset_client(live: StartLive) -> None:
    server = live("validated")
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    raw.close()  # RST
    with Client(server.port) as client:
        assert client.request(get()).body == b"hello"
