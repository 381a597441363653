"""Tests for microwsgi.server.loop over real sockets on 127.0.0.1 (and ::1), in raw bytes.

Connection handling: keep-alive, pipelining, close, bad input answered with the right status
and the server still serving others, timeouts, disconnects (each of these against the built-in
server and against gunicorn with microwsgi's worker: the `live` fixture), and, for the built-in
server alone, idle connections holding no thread, binding (port 0, IPv6, port in use) and
graceful shutdown on signals.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from server_live import HAS_IPV6, Client, StartLive, echo_app, get, hello_app, serving

from microwsgi.server import BindError, DevServer, mux, serve
from microwsgi.server.sockets import bind

ROOT = Path(__file__).resolve().parents[2]
SMALL_BODY = 10  # max_body_size where a test needs one
HEADER_TIMEOUT = 0.5  # header_timeout where a test needs one


def test_keep_alive_serves_several_requests_on_one_connection(live: StartLive) -> None:
    with Client(live("hello").port) as client:
        for _ in range(3):
            response = client.request(get("/hello"))
            assert response.status == 200
            assert response.body == b'{"message": "hello"}'
            assert response.header("Connection") is None
        assert response.header("Date") and response.header("Server") == "microwsgi"


def test_pipelined_requests_are_answered_in_order(live: StartLive) -> None:
    with Client(live("echo").port) as client:
        client.send(
            b"POST /one HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            + get("/two")
            + b"POST /three HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nxy\r\n0\r\n\r\n"
        )
        answers = [client.response() for _ in range(3)]
        assert [a.header("X-Path") for a in answers] == ["/one", "/two", "/three"]
        assert [a.body for a in answers] == [b"abc", b"", b"xy"]


@pytest.mark.parametrize("multiplexing", [True, False], ids=["epoll-threads", "pool"])
def test_both_thread_strategies_serve_keep_alive_and_pipelining(
    monkeypatch: pytest.MonkeyPatch, multiplexing: bool
) -> None:
    # Linux runs the epoll threads; other systems the pool, checked here too.
    if multiplexing and not mux.AVAILABLE:
        pytest.skip("no epoll on this system")
    monkeypatch.setattr(mux, "AVAILABLE", multiplexing)
    with serving(echo_app) as server:
        clients = [Client(server.port) for _ in range(4)]
        try:
            for round_ in range(3):
                for index, client in enumerate(clients):
                    client.send(get(f"/{index}/{round_}a") + get(f"/{index}/{round_}b"))
                for index, client in enumerate(clients):
                    paths = [client.response().header("X-Path") for _ in range(2)]
                    assert paths == [f"/{index}/{round_}a", f"/{index}/{round_}b"]
        finally:
            for client in clients:
                client.close()


def test_connection_close_is_honoured(live: StartLive) -> None:
    with Client(live("hello").port) as client:
        response = client.request(get(extra="Connection: close\r\n"))
        assert response.status == 200 and response.header("Connection") == "close"
        assert client.closed()


def test_http_1_0_closes_unless_keep_alive_is_asked(live: StartLive) -> None:
    server = live("hello")
    with Client(server.port) as client:
        response = client.request(b"GET / HTTP/1.0\r\n\r\n")
        assert response.status == 200 and client.closed()
    with Client(server.port) as client:
        keep = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        assert client.request(keep).header("Connection") == "keep-alive"
        assert client.request(keep).status == 200


def test_chunked_request_body_with_extensions_and_trailers(live: StartLive) -> None:
    with Client(live("echo").port) as client:
        response = client.request(
            b"PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        )
        assert response.body == b"hello world"
        assert client.request(get()).status == 200


@pytest.mark.parametrize(
    ("raw", "status", "options"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, {}),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431, {}),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)),
            431,
            {},
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
            413,
            {"max_body_size": SMALL_BODY},
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, {}),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", 501, {}),
        (b"GET / HTTP/1.1\r\n\r\n", 400, {}),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, {}),
        (b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, {}),
        (b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400, {}),
    ],
    ids=["414-target", "431-bytes", "431-count", "413-body", "501-coding", "501-empty-element",
         "400-no-host", "505-version", "400-method", "400-request-line"],
)  # fmt: skip
def test_limits_and_malformed_requests_get_their_status(
    live: StartLive, raw: bytes, status: int, options: dict[str, Any]
) -> None:
    server = live("echo", **options)
    with Client(server.port) as client:
        response = client.request(raw)
        assert response.status == status
        assert response.header("Connection") == "close"
        assert client.closed()
    with Client(server.port) as other:
        assert other.request(get()).status == 200


def test_higher_minor_version_and_zero_padded_lengths_are_served(live: StartLive) -> None:
    # RFC 9110 §6.2: HTTP/1.9 is read as HTTP/1.1 (persistent); leading zeros do not count
    # toward the digit caps of Content-Length and chunk-size.
    with Client(live("echo").port) as client:
        padded = b"0" * 20 + b"5"
        response = client.request(
            b"POST /v HTTP/1.9\r\nHost: t\r\nContent-Length: " + padded + b"\r\n\r\nhello"
        )
        assert (response.status, response.body) == (200, b"hello")
        assert response.header("Connection") is None
        response = client.request(
            b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + padded
            + b"\r\nhello\r\n0000\r\n\r\n"
        )
        assert (response.status, response.body) == (200, b"hello")
        assert client.request(get()).status == 200


def test_chunked_body_over_the_maximum_is_413(live: StartLive) -> None:
    with Client(live("echo", max_body_size=SMALL_BODY).port) as client:
        response = client.request(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n5\r\nworld\r\n1\r\n!\r\n0\r\n\r\n"
        )
        assert response.status == 413 and client.closed()


def test_error_answer_survives_a_body_still_being_sent(live: StartLive) -> None:
    # Closing with unread input would reset the connection and could destroy the answer.
    with Client(live("echo", max_body_size=SMALL_BODY).port) as client:
        body = b"x" * 200_000
        sender = threading.Thread(
            target=lambda: client.send(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + body
            )
        )
        sender.start()
        response = client.response()
        sender.join(10)
        assert response.status == 413 and response.header("Connection") == "close"


SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-lengths": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "signed-length": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\na",
    "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "huge-chunk-size": b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"fffffffffffffffff\r\n",
    "no-chunk-crlf": b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1\r\naXX0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: t\rX: 1\r\n\r\n",
    "nul": b"GET / HTTP/1.1\r\nHost: t\x00\r\n\r\n",
}


@pytest.mark.parametrize("raw", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_smuggling_shapes_get_400_and_close_and_nothing_is_smuggled(
    live: StartLive, raw: bytes
) -> None:
    server = live("recorder")  # records every path it serves
    with Client(server.port) as client:
        client.send(raw + get("/smuggled"))
        response = client.response()
        assert response.status == 400
        assert response.header("Connection") == "close"
        assert client.closed()
    with Client(server.port) as other:
        assert other.request(get("/fine")).status == 200
    assert "/fine" in server.events() and "/smuggled" not in server.events()


def test_header_timeout_answers_408_to_a_started_request(live: StartLive) -> None:
    with Client(live("hello", header_timeout=HEADER_TIMEOUT).port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished: slowloris
        response = client.response()
        assert response.status == 408 and client.closed()


def test_trickling_header_bytes_do_not_extend_the_header_timeout(live: StartLive) -> None:
    with Client(live("hello", header_timeout=HEADER_TIMEOUT).port) as client:
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 1000:
                client.send(bytes([byte]))
                time.sleep(0.01)
        assert client.response().status == 408


def test_idle_keep_alive_connection_is_closed_silently(live: StartLive) -> None:
    # gunicorn's keepalive counts whole seconds: 1 s there.
    with Client(live("hello", keepalive_timeout=0.3).port) as client:
        assert client.request(get()).status == 200
        assert client.closed()  # no 408: no request had started


def test_client_disconnect_mid_body_leaves_the_server_serving(live: StartLive) -> None:
    server = live("body-failure")
    with Client(server.port) as client:
        client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial")
        server.wait_event("reading")
    server.wait_event("failed")  # the app sees its read of the body fail
    with Client(server.port) as other:
        assert other.request(get()).status == 200


def test_client_disconnect_mid_response_closes_the_iterable(live: StartLive) -> None:
    server = live("endless")
    with Client(server.port) as client:
        client.send(get("/endless"))
        assert client.rfile.readline().startswith(b"HTTP/1.1 200")
    server.wait_event("closed")
    with Client(server.port) as other:
        assert other.request(get()).body == b"short"


def test_port_zero_reports_the_real_port() -> None:
    server = DevServer(hello_app, "127.0.0.1", 0, access_log=False)
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    assert server.address == ("127.0.0.1", server.port)
    server.start()
    try:
        with Client(server.port) as client:
            assert client.request(get()).status == 200
    finally:
        server.shutdown()


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback on this machine")
def test_ipv6_loopback() -> None:
    with serving(echo_app, host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        with Client(server.port, host="::1") as client:
            response = client.request(get("/v6", host="[::1]"))
            assert response.status == 200 and response.header("X-Path") == "/v6"


def test_port_in_use_raises_a_one_line_bind_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BindError) as info:
            bind("127.0.0.1", port)
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"
    assert isinstance(info.value, OSError)


def test_serve_prints_the_listen_message_and_reports_readiness(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ready: list[tuple[str, int]] = []

    def on_ready(address: tuple[str, int]) -> None:
        ready.append(address)
        # The handlers are in place by now: this stops the loop as soon as it starts.
        os.kill(os.getpid(), signal.SIGINT)

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals need the main thread")
    serve(hello_app, "127.0.0.1", 0, listen_msg=True, ready=on_ready, access_log=False)
    host, port = ready[0]
    assert host == "127.0.0.1" and port > 0
    assert f"Server listening on http://127.0.0.1:{port}\n" in capsys.readouterr().out


def test_idle_connections_hold_no_thread_and_a_new_request_is_answered() -> None:
    count = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * count + 200:
        if hard != resource.RLIM_INFINITY and hard < 2 * count + 200:
            pytest.skip("RLIMIT_NOFILE too low for 1,000 connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * count + 200, hard))
    threads_before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        with serving(hello_app, threads=4, keepalive_timeout=60) as server:
            for i in range(count):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                idle.append(sock)
                if i % 2:  # half after one answered request (keep-alive), half never used
                    sock.sendall(get())
            for sock in idle[1::2]:
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            # The generous bound is expressed as a timeout: the answer must come at all.
            with Client(server.port, timeout=2.0) as client:
                assert client.request(get("/hello")).status == 200
            # The pool (4), the loop thread, and nothing per connection.
            assert threading.active_count() - threads_before <= 4 + 1
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from microwsgi.server import serve

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            print("in flight", flush=True)
            time.sleep(1.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    serve(app, "127.0.0.1", 0, listen_msg=True, shutdown_timeout=10)
    print("returned", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully_after_in_flight_requests(signum: int, tmp_path: Path) -> None:
    script = tmp_path / "shutdown_app.py"
    script.write_text(SHUTDOWN_SCRIPT.format(root=str(ROOT)))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        idle = Client(port)  # an idle keep-alive connection, closed by the shutdown
        assert idle.request(get()).status == 200
        with Client(port) as busy:
            busy.send(get("/slow"))
            assert proc.stdout.readline() == "in flight\n"
            proc.send_signal(signum)
            response = busy.response()
            assert response.status == 200 and response.body == b"done"
            assert response.header("Connection") == "close"
        assert idle.closed()
        idle.close()
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "returned" in out
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


START_SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from microwsgi import Server

    server = Server()

    @server.register("GET /hello/:name")
    def hello(request):
        return {{"message": "Hello, " + request["params"]["name"] + "!"}}

    server.start_server("127.0.0.1", 0, listen_msg=True)
    """
)


def test_seed_start_server_prints_the_address_and_serves(tmp_path: Path) -> None:
    script = tmp_path / "seed_app.py"
    script.write_text(START_SERVER_SCRIPT.format(root=str(ROOT)))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Server listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with Client(port) as client:
            response = client.request(get("/hello/you"))
            assert response.body == b'{"message":"Hello, you!"}'
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_seed_start_server_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "seed_app.py"
    busy = bind("127.0.0.1", 0)
    port = busy.getsockname()[1]
    script.write_text(
        START_SERVER_SCRIPT.format(root=str(ROOT)).replace('"127.0.0.1", 0', f'"127.0.0.1", {port}')
    )
    try:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=30
        )
    finally:
        busy.close()
    assert done.returncode == 1
    assert done.stderr == f"microwsgi: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_shutdown_of_a_server_that_never_ran_releases_the_port() -> None:
    server = DevServer(hello_app, "127.0.0.1", 0, access_log=False)
    port = server.port
    server.shutdown()
    bind("127.0.0.1", port).close()  # free again
