"""PEP 3333 at its edges, through the real server: what an application may get wrong, what a
client may do mid-answer, and how bodies are read and files sent; against the built-in server and
against gunicorn with microwsgi's worker (the `live` fixture), except what needs this process
(a monkeypatched drain cap)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from server_live import Client, StartLive, get, serving

from microwsgi.server import exchange

BIG = 20 * 1024 * 1024
IO_TIMEOUT = 0.3  # io_timeout where a test needs one


def simple(body: bytes = b"ok", headers: list[tuple[str, str]] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers or [("Content-Type", "text/plain")])
        return [body]

    return app


@pytest.mark.parametrize("app", ["no-start-response", "status-without-code", "status-not-str"])
def test_an_app_breaking_pep_3333_gets_a_500_and_the_server_goes_on(
    live: StartLive, app: str
) -> None:
    server = live(app)
    with Client(server.port) as client:
        response = client.request(get())
        assert response.status == 500 and response.header("Connection") == "close"
        assert response.body == b"Internal Server Error\n"
    with Client(server.port) as client:
        assert client.request(get()).status == 500
    server.logged("error handling GET /")


# Three ASCII digits, a space, the reason (PEP 3333; RFC 9112 §4), the code in 100..599 (RFC
# 9110 §15); a 1xx is interim (§15.2), never an answer, so an app cannot give one as its status.
@pytest.mark.parametrize(
    "status",
    [
        "2000",
        "200",
        "200\tOK",
        "\u00b200 OK",
        "\u0662\u0660\u0660 OK",
        "099 Low",
        "600 High",
        "103 Early",
    ],
)
def test_an_invalid_status_line_from_the_app_gets_a_500_and_the_server_goes_on(
    live: StartLive, status: str
) -> None:
    server = live("status-asked")
    with Client(server.port) as client:
        response = client.request(get(f"/?status={quote(status)}"))
        assert response.status == 500 and response.body == b"Internal Server Error\n"
    with Client(server.port) as client:
        assert client.request(get(f"/?status={quote('299 Fine')}")).status == 299
    server.logged("error handling GET /")


def test_an_app_exiting_is_logged_and_only_its_connection_closed(live: StartLive) -> None:
    server = live("exits", threads=1)
    with Client(server.port) as client:
        client.send(get("/exit"))
        assert client.closed()
    with Client(server.port) as client:  # the only serving thread is still there
        assert client.request(get()).body == b"ok"
    server.logged("unexpected error serving 127.0.0.1")


def test_date_and_server_from_the_app_are_kept_not_doubled(live: StartLive) -> None:
    with Client(live("own-date-and-server").port) as client:
        response = client.request(get())
    assert [v for k, v in response.headers if k == "Date"] == ["Tue, 01 Jan 2030 00:00:00 GMT"]
    assert [v for k, v in response.headers if k == "Server"] == ["mine"]


def test_an_empty_body_gets_content_length_zero(live: StartLive) -> None:
    with Client(live("empty").port) as client:
        response = client.request(get())
        assert response.header("Content-Length") == "0" and response.body == b""
        assert client.request(get()).status == 200


def test_empty_writes_after_the_headers_send_nothing(live: StartLive) -> None:
    with Client(live("empty-writes").port) as client:
        assert client.request(get()).body == b"abcd"


def test_small_reads_of_a_large_body_see_every_byte(live: StartLive) -> None:
    body = bytes(range(256)) * 400  # 100 kB, more than one piece from the parser
    with Client(live("small-reads").port) as client:
        head = f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        assert client.request(head + body).body == body


def test_an_unread_chunked_body_past_the_drain_cap_closes() -> None:
    # The cap as it is, not patched (a compiled build reads its constants at build time): a
    # chunked body 64 KiB longer than it, sent from a thread while the answer is read.
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    chunks = exchange.DRAIN_LIMIT // 0x10000 + 1
    with serving(simple()) as server, Client(server.port) as client:
        sender = threading.Thread(
            target=_send_quietly,
            args=(client, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"),
            kwargs={"then": [chunk] * chunks},
        )
        sender.start()
        response = client.response()
        # The length was unknown when the answer went out; draining it then hit the cap.
        assert response.body == b"ok" and client.closed()
        sender.join(10)


def _send_quietly(client: Client, head: bytes, then: list[bytes]) -> None:
    """Send `head`, then each piece of `then`, until the server closes on us."""
    with contextlib.suppress(OSError):
        client.send(head)
        for piece in then:
            client.send(piece)


def test_a_failing_close_of_the_iterable_is_logged(live: StartLive) -> None:
    server = live("failing-close")
    with Client(server.port) as client:
        assert client.request(get("/c")).body == b"body"
        assert client.request(get("/c")).body == b"body"
    server.logged("error closing the answer to GET /c")


def test_many_header_names_all_reach_the_environ(live: StartLive) -> None:
    with Client(live("environ-key").port) as client:
        for batch in range(7):  # past the 512 names the environ-key cache keeps
            names = [f"X-Many-{batch}-{i}" for i in range(90)]
            extra = "".join(f"{name}: {i}\r\n" for i, name in enumerate(names))
            answer = client.request(get(f"/?key=HTTP_X_MANY_{batch}_89", extra=extra))
            assert answer.status == 200 and answer.body == b"89"


def test_a_file_wrapper_honours_a_shorter_content_length(live: StartLive, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789" * 10)
    first_five = get(f"/?path={path}&length=5")
    with Client(live("file").port) as client:
        assert client.request(first_five).body == b"01234"
        assert client.request(first_five).body == b"01234"


@pytest.mark.parametrize(("source", "body"), [("pipe", b"piped"), ("no-close", b"plain")])
def test_a_file_wrapper_over_other_readers_is_iterated(
    live: StartLive, source: str, body: bytes
) -> None:
    with Client(live("other-readers").port) as client:
        assert client.request(get(f"/{source}")).body == body


def _sparse_file(path: Path) -> Path:
    with path.open("wb") as f:
        f.truncate(BIG)
    return path


@pytest.mark.parametrize("kind", ["body", "file"])
def test_a_client_that_stops_reading_costs_one_io_timeout(
    live: StartLive, kind: str, tmp_path: Path
) -> None:
    big = _sparse_file(tmp_path / "big.bin")
    server = live("big", io_timeout=IO_TIMEOUT)
    with Client(server.port) as stuck:
        stuck.send(get(f"/{kind}?path={big}"))  # and never read the answer
        server.logged("client went away")
        with Client(server.port) as other:
            assert other.request(get("/small")).body == b"ok"


def test_a_client_resetting_mid_head_is_dropped_and_the_server_goes_on(live: StartLive) -> None:
    server = live("ok")
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    with Client(server.port) as client:
        assert client.request(get()).body == b"ok"


def test_a_client_half_closing_mid_request_gets_no_answer(live: StartLive) -> None:
    with Client(live("ok").port) as client:
        client.send(b"GET / HT")
        client.sock.shutdown(socket.SHUT_WR)
        assert client.rfile.read() == b""  # nobody is listening for a 400: just closed


def test_a_body_that_stops_coming_is_a_408_even_if_the_app_swallows_the_error(
    live: StartLive,
) -> None:
    # A framework may turn any read error into an answer of its own: this app does.
    with Client(live("swallows-read-errors", io_timeout=IO_TIMEOUT).port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        response = client.response()
        assert response.status == 408 and response.header("Connection") == "close"
        assert response.body == b"request body not received in time\n"
