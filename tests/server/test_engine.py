"""Tests for microwsgi.server.loop.Engine: what an embedder (a gunicorn worker) drives.

Sockets it is handed (IPv4, IPv6, unix, several at once), a graceful stop from another thread
with a bounded wait, a periodic tick from the loop thread, a cap on open connections, a stop
after N requests, the parser's limits from the config, and the hooks around each request.
Everything over real sockets; every wait is on an event, with a timeout only as a guard.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gunicorn_process import wait_until
from server_live import HAS_IPV6, Client, StartEngine, get, hello_app, listening, running
from tracing import Trace

from microwsgi.server import Engine, Hooks, ServerConfig, mux
from microwsgi.server.channel import Channel
from microwsgi.server.exchange import Exchange
from microwsgi.server.protocol import NEED_DATA, ProtocolError, RequestHead
from microwsgi.server.protocol.connection import Connection
from microwsgi.server.responder import Responder, Turn
from microwsgi.server.wsgi import WSGIBridge

WAIT = 10.0  # a guard against hanging, never what a test asserts


def environ_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    keys = ("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme")
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def config(**options: Any) -> ServerConfig:
    return ServerConfig(access_log=False, **options)


class Gate:
    """An app whose requests to /wait block until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.paths.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/wait":
            self.entered.set()
            assert self.open.wait(WAIT)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]


def test_serves_several_listening_sockets_it_is_handed(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(16)
    listeners = [listening(), unix]
    if HAS_IPV6:
        listeners.append(listening("::1", socket.AF_INET6))
    ports = [sock.getsockname()[1] for sock in listeners if sock.family != socket.AF_UNIX]
    with running(Engine(environ_app, listeners, config())):
        with Client(ports[0]) as client:
            seen = json.loads(client.request(get()).body)
        assert seen["SERVER_NAME"] == "127.0.0.1" and seen["SERVER_PORT"] == str(ports[0])
        assert seen["REMOTE_ADDR"] == "127.0.0.1"
        with Client(path=path) as client:
            seen = json.loads(client.request(get()).body)
        assert seen["SERVER_NAME"] == "localhost" and seen["SERVER_PORT"] == "80"
        assert seen["REMOTE_ADDR"] == "" and seen["REMOTE_PORT"] == ""
        if HAS_IPV6:
            with Client(ports[1], host="::1") as client:
                seen = json.loads(client.request(get(host="[::1]")).body)
            assert seen["SERVER_NAME"] == "::1" and seen["REMOTE_ADDR"] == "::1"
    for sock in listeners:  # the engine closed what it was handed
        assert sock.fileno() == -1


def test_an_engine_needs_a_socket_and_a_sane_config() -> None:
    with pytest.raises(ValueError, match="at least one listening socket"):
        Engine(hello_app, [])
    with listening() as sock, pytest.raises(ValueError, match="max_connections"):
        Engine(hello_app, [sock], ServerConfig(max_connections=0))


def test_server_name_can_be_given() -> None:
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(environ_app, [sock], config(), server_name="example.org")
    with running(engine), Client(port) as client:
        assert json.loads(client.request(get()).body)["SERVER_NAME"] == "example.org"


def test_extra_environ_is_in_every_request() -> None:
    sock = listening()
    extra = {"wsgi.multiprocess": True, "wsgi.url_scheme": "https"}
    engine = Engine(environ_app, [sock], config(), extra_environ=extra)
    with running(engine), Client(sock.getsockname()[1]) as client:
        assert json.loads(client.request(get()).body)["wsgi.url_scheme"] == "https"
        assert json.loads(client.request(get()).body)["wsgi.url_scheme"] == "https"


def test_graceful_stop_finishes_in_flight_closes_idle_and_stops_accepting() -> None:
    gate = Gate()
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(gate, [sock], config())
    with running(engine):
        idle = Client(port)
        assert idle.request(get("/first")).status == 200
        with Client(port) as busy:
            busy.send(get("/wait"))
            assert gate.entered.wait(WAIT)
            engine.stop()
            assert idle.closed()  # the idle keep-alive connection goes at once
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            gate.open.set()
            response = busy.response()
            assert response.body == b"done" and response.header("Connection") == "close"
        assert engine.wait(WAIT)
        idle.close()


def test_keepalive_on_stop_answers_a_request_on_an_idle_connection_with_close() -> None:
    gate = Gate()
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(gate, [sock], config(keepalive_on_stop=30))
    with running(engine):
        idle, quiet = Client(port), Client(port)
        assert idle.request(get("/first")).status == 200
        assert quiet.request(get("/first")).status == 200
        with Client(port) as busy:
            busy.send(get("/wait"))
            assert gate.entered.wait(WAIT)
            engine.stop()
            assert engine.stopping.wait(WAIT)
            with pytest.raises(OSError):  # no longer accepting
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            # A request that was on its way when the stop began is answered, and says close.
            late = idle.request(get("/late"))
            assert late.status == 200 and late.header("Connection") == "close"
            assert idle.closed()
            gate.open.set()
            response = busy.response()
            assert response.body == b"done" and response.header("Connection") == "close"
        # The last idle connection keeps the stop waiting until its client closes it.
        assert not engine.wait(0)
        quiet.close()
        assert engine.wait(WAIT)
        idle.close()
    assert gate.paths == ["/first", "/first", "/wait", "/late"]


@pytest.mark.skipif(not mux.AVAILABLE, reason="the sweep is the epoll threads' (Linux)")
@pytest.mark.parametrize("where", ["parked", "in-the-loop"])
def test_keepalive_on_stop_closes_a_connection_that_stays_idle_that_long(
    start_engine: StartEngine, where: str
) -> None:
    # Wherever the idle connection waits when the stop begins (parked by a thread, or back
    # in the loop's selector), its keep-alive minute is cut short.
    trace = Trace()
    engine, port = start_engine(
        hello_app, trace=trace, multiplex=True, keepalive_timeout=60, keepalive_on_stop=0.2
    )
    with Client(port) as idle:
        assert idle.request(get()).status == 200
        if where == "in-the-loop":
            trace.wait_for("sweep")  # the threads gave it back to the loop's selector
        engine.stop()
        assert idle.closed()  # within the client's 5 s, not the minute; no 408
        assert engine.wait(WAIT)


def test_after_max_requests_idle_connections_still_get_their_next_request_answered() -> None:
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(hello_app, [sock], config(max_requests=2, keepalive_on_stop=30))
    with running(engine), Client(port) as first, Client(port) as second:
        assert first.request(get()).header("Connection") is None
        last = second.request(get())
        assert last.header("Connection") == "close" and second.closed()
        assert engine.stopping.wait(WAIT)
        # The other client did not know: its next request is answered all the same.
        late = first.request(get())
        assert late.status == 200 and late.header("Connection") == "close"
        assert first.closed()
        assert engine.wait(WAIT)


def test_a_request_past_max_requests_says_close_before_the_last_one_stopped_it() -> None:
    """The thread answering the last of max_requests is held just after taking its number
    (in the log line it writes then, as a slow stderr under load holds it): a request another
    thread answers meanwhile is past the limit, and must close its connection too."""
    reached, let_go = threading.Event(), threading.Event()

    class Holding(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("served 2 requests"):
                reached.set()
                let_go.wait(WAIT)

    logger = logging.getLogger("microwsgi.server")
    handler, level = Holding(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(hello_app, [sock], config(max_requests=2, keepalive_on_stop=30, threads=2))
    try:
        with running(engine), Client(port) as first, Client(port) as second:
            assert first.request(get()).header("Connection") is None
            second.send(get())  # the second request: the limit
            assert reached.wait(WAIT)
            late = first.request(get())  # the third, on the other thread
            assert late.status == 200 and late.header("Connection") == "close"
            assert first.closed()
            let_go.set()
            assert second.response().header("Connection") == "close"
            assert engine.wait(WAIT)
    finally:
        let_go.set()
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("force", [False, True], ids=["bounded", "forced"])
def test_a_stuck_request_holds_the_stop_no_longer_than_its_bound(
    force: bool, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()
    sock = listening()
    engine = Engine(gate, [sock], config(shutdown_timeout=60 if force else 0.2))
    with running(engine), Client(sock.getsockname()[1]) as client:
        client.send(get("/wait"))
        assert gate.entered.wait(WAIT)
        engine.stop()
        if force:  # a second signal, say: stop waiting at all
            engine.stop(force=True)
        assert engine.wait(WAIT), "run() must return although a request is stuck"
        assert not gate.open.is_set()  # it was still stuck when run() returned
        if not force:
            assert "1 connection(s) still busy at shutdown" in caplog.text
        gate.open.set()
        # The thread outlived the engine: its answer still goes out, then the connection is
        # closed, not left behind.
        assert client.response().header("Connection") == "close"
        assert client.closed()


def test_tick_runs_in_the_loop_thread_also_while_stopping() -> None:
    gate = Gate()
    sock = listening()
    threads: set[str] = set()
    stop_asked = threading.Event()
    ticked_while_stopping = threading.Event()

    def tick() -> None:
        threads.add(threading.current_thread().name)
        if stop_asked.is_set():
            ticked_while_stopping.set()

    engine = Engine(gate, [sock], config(), Hooks(tick=tick, tick_interval=0.01))
    with running(engine), Client(sock.getsockname()[1]) as client:
        client.send(get("/wait"))
        assert gate.entered.wait(WAIT)
        engine.stop()
        stop_asked.set()
        # gunicorn's heartbeat must go on while a graceful stop waits for the request.
        assert ticked_while_stopping.wait(WAIT)
        gate.open.set()
        assert client.response().status == 200
    assert threads == {"test-engine-loop"}


def test_a_failing_tick_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    second = threading.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) >= 2:
            second.set()
        raise RuntimeError("tick failed")

    sock = listening()
    with running(Engine(hello_app, [sock], config(), Hooks(tick=tick, tick_interval=0.01))):
        assert second.wait(WAIT)
        with Client(sock.getsockname()[1]) as client:
            assert client.request(get()).status == 200
    assert "error in the tick hook" in caplog.text


def test_tick_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick_interval"):
        Hooks(tick=lambda: None, tick_interval=0)


def test_a_wake_up_accepts_one_connection_and_leaves_the_rest_of_a_burst() -> None:
    # Processes sharing a listening socket (gunicorn's workers) all wake for a burst of
    # connections; each taking one at a time shares the burst out instead of one taking all.
    sock = listening()
    engine = Engine(hello_app, [sock], config())
    clients = [socket.create_connection(sock.getsockname()) for _ in range(3)]
    try:
        engine.accept(sock)
        assert engine.open_connections == 1
        engine.accept(sock)
        assert engine.open_connections == 2
    finally:
        with running(engine):
            pass  # its stop closes the connections it accepted
        for client in clients:
            client.close()


# defer_accept True: another process sharing the socket holds fewer connections, so the engine
# leaves each connection to it, once; nobody else is here, so the engine takes it after
# DEFER_ACCEPT and answers it (nothing is lost to a process that does not accept): asked twice
# a connection. False: each is taken at once, asked once.
@pytest.mark.parametrize(("defers", "asked"), [(True, [0, 0, 1, 1]), (False, [0, 1])])
def test_a_connection_left_to_another_process_is_taken_if_it_still_waits(
    defers: bool, asked: list[int]
) -> None:
    seen: list[int] = []

    def defer(held: int) -> bool:
        seen.append(held)
        return defers

    sock = listening()
    port = sock.getsockname()[1]
    with running(Engine(hello_app, [sock], config(), Hooks(defer_accept=defer))) as engine:
        first = Client(port)
        assert first.request(get("/1")).status == 200
        second = Client(port)
        assert second.request(get("/2")).status == 200
        assert engine.open_connections == 2
        assert seen == asked
        first.close()
        second.close()


def test_at_the_connection_cap_the_next_one_waits_in_the_backlog() -> None:
    seen: list[tuple[int, bool]] = []
    ticks = threading.Condition()

    def tick() -> None:
        with ticks:
            seen.append((engine.open_connections, engine.accepting))
            ticks.notify_all()

    def wait_ticks(count: int) -> tuple[int, bool]:
        with ticks:
            start = len(seen)
            assert ticks.wait_for(lambda: len(seen) >= start + count, WAIT)
            return seen[-1]

    gate = Gate()
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(gate, [sock], config(max_connections=2), Hooks(tick=tick, tick_interval=0.01))
    with running(engine):
        first, second = Client(port), Client(port)
        assert first.request(get("/1")).status == 200
        assert second.request(get("/2")).status == 200
        third = Client(port)  # connected: the kernel holds it in the backlog
        third.send(get("/3"))
        # Two ticks after the third connected, the loop has seen the listener readable and
        # still not accepted: at the cap it does not even look.
        assert wait_ticks(2) == (2, False)
        assert gate.paths == ["/1", "/2"]
        first.close()  # a slot frees up: the third is accepted and answered, none refused
        assert third.response().status == 200
        assert gate.paths == ["/1", "/2", "/3"]
        assert wait_ticks(1) == (2, False)  # at the cap again
        second.close()
        with ticks:
            assert ticks.wait_for(lambda: seen[-1] == (1, True), WAIT)
        third.close()


def test_after_max_requests_the_engine_stops_gracefully() -> None:
    sock = listening()
    port = sock.getsockname()[1]
    engine = Engine(hello_app, [sock], config(max_requests=3))
    with running(engine), Client(port) as client:
        assert client.request(get()).header("Connection") is None
        assert client.request(get()).header("Connection") is None
        last = client.request(get())
        assert last.status == 200 and last.header("Connection") == "close"
        assert client.closed()
        assert engine.wait(WAIT)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize(
    ("options", "raw", "status"),
    [
        ({"max_request_line": 20}, get("/123456"), 200),
        ({"max_request_line": 20}, get("/1234567"), 414),
        ({"max_field_size": 12}, get(extra="X-A: 12345\r\n"), 200),
        ({"max_field_size": 12}, get(extra="X-A: 123456\r\n"), 431),
        ({"max_header_count": 2}, get(extra="A: 1\r\n"), 200),
        ({"max_header_count": 2}, get(extra="A: 1\r\nB: 2\r\n"), 431),
    ],
    ids=["line-at", "line-over", "field-at", "field-over", "count-at", "count-over"],
)
def test_the_parser_takes_its_limits_from_the_config(
    options: dict[str, Any], raw: bytes, status: int
) -> None:
    sock = listening()
    engine = Engine(hello_app, [sock], config(**options))
    with running(engine), Client(sock.getsockname()[1]) as client:
        assert client.request(raw).status == status


@pytest.fixture
def hooked(start_engine: StartEngine) -> Callable[..., tuple[Engine, int]]:
    """Start engines with given hooks (stopped at the end)."""

    def start(app: Any = environ_app, **hooks: Any) -> tuple[Engine, int]:
        return start_engine(app, hooks=Hooks(**hooks))  # type: ignore[no-any-return]

    return start


def test_prepare_hook_sets_extra_environ_before_the_app(
    hooked: Callable[..., tuple[Engine, int]],
) -> None:
    def trusted_scheme(exchange: Exchange) -> None:
        # What a gunicorn worker does with forwarded_allow_ips and secure_scheme_headers.
        environ = exchange.environ
        if (
            exchange.peer[0] == "127.0.0.1"
            and ("x-forwarded-proto", "https") in exchange.head.headers
        ):
            environ["wsgi.url_scheme"] = "https"

    _, port = hooked(prepare=trusted_scheme)
    with Client(port) as client:
        seen = json.loads(client.request(get(extra="X-Forwarded-Proto: https\r\n")).body)
        assert seen["wsgi.url_scheme"] == "https"
        assert json.loads(client.request(get()).body)["wsgi.url_scheme"] == "http"


def test_prepare_hook_can_ask_to_close_after_the_answer(
    hooked: Callable[..., tuple[Engine, int]],
) -> None:
    def no_keep_alive(exchange: Exchange) -> None:
        exchange.close_after = True

    _, port = hooked(prepare=no_keep_alive)
    with Client(port) as client:
        response = client.request(get())
        assert response.status == 200 and response.header("Connection") == "close"
        assert client.closed()


def test_a_prepare_hook_refusing_with_a_protocol_error_gives_its_status(
    hooked: Callable[..., tuple[Engine, int]], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def refuse(exchange: Exchange) -> None:
        raise ProtocolError(400, "conflicting scheme headers")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        return hello_app(environ, start_response)

    _, port = hooked(app=app, prepare=refuse)
    with Client(port) as client:
        response = client.request(get())
        assert (response.status, response.header("Connection")) == (400, "close")
        assert b"conflicting scheme headers" in response.body
        assert client.closed()
    assert seen == []
    assert "error handling" not in caplog.text  # a refusal, not a failure


def test_a_failing_prepare_hook_is_a_500(
    hooked: Callable[..., tuple[Engine, int]], caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(exchange: Exchange) -> None:
        raise RuntimeError("no")

    _, port = hooked(prepare=refuse)
    with Client(port) as client:
        response = client.request(get())
        assert response.status == 500 and response.header("Connection") == "close"
    assert "error handling GET /" in caplog.text


def test_finish_and_access_hooks_see_the_completed_exchange(
    hooked: Callable[..., tuple[Engine, int]], caplog: pytest.LogCaptureFixture
) -> None:
    finished: list[Exchange] = []
    logged: list[tuple[str | None, int]] = []
    both = threading.Event()

    def finish(exchange: Exchange) -> None:
        finished.append(exchange)
        if logged:
            both.set()

    def access(exchange: Exchange) -> None:
        logged.append((exchange.status, exchange.bytes_sent))

    caplog.set_level(logging.INFO, "microwsgi.access")
    _, port = hooked(app=hello_app, finish=finish, access_log=access)
    with Client(port) as client:
        response = client.request(get("/hi?x=1", extra="User-Agent: t\r\n"))
    assert both.wait(WAIT)
    done = finished[0]
    assert done.status == "200 OK" and done.headers_sent and done.bytes_sent == len(response.body)
    assert done.head.method == "GET" and done.head.target == "/hi?x=1"
    assert ("user-agent", "t") in done.head.headers
    assert done.environ["QUERY_STRING"] == "x=1" and done.peer[0] == "127.0.0.1"
    assert done.duration > 0
    assert logged == [("200 OK", len(response.body))]
    # The embedder's access_log replaces the built-in line.
    assert not [r for r in caplog.records if r.name == "microwsgi.access"]


def test_a_failing_finish_hook_is_logged_and_the_connection_goes_on(
    hooked: Callable[..., tuple[Engine, int]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(exchange: Exchange) -> None:
        raise RuntimeError("hook failed")

    _, port = hooked(app=hello_app, finish=broken)
    with Client(port) as client:
        assert client.request(get()).status == 200
        assert client.request(get()).status == 200
    assert "error in the hook" in caplog.text and "hook failed" in caplog.text


@pytest.mark.parametrize("multiplex", [True, False], ids=["epoll-threads", "pool"])
def test_busy_threads_counts_the_threads_inside_a_turn_that_began_before_a_moment(
    start_engine: StartEngine, multiplex: bool
) -> None:
    # What a gunicorn worker's heartbeat asks: how many threads have been stuck since then.
    if multiplex and not mux.AVAILABLE:
        pytest.skip("epoll is Linux-only")
    gate = Gate()
    engine, port = start_engine(gate, multiplex=multiplex, threads=2)
    with Client(port) as held, Client(port) as other:
        held.send(get("/wait"))
        assert gate.entered.wait(WAIT)
        before = time.monotonic()
        assert other.request(get("/quick")).status == 200  # the other thread, done already
        assert engine.busy_threads(before) == 1  # the held one began before that moment
        assert engine.busy_threads(before - 3600) == 0  # nobody was busy an hour ago
        gate.open.set()
        assert held.response().status == 200
        wait_until(lambda: engine.busy_threads(time.monotonic()) == 0, WAIT, "the turn to end")


def test_a_head_sent_in_time_is_answered_though_the_loop_sees_it_late() -> None:
    # A loaded machine, made by holding the loop thread in its tick: the unfinished head goes
    # back to the loop (its epoll park ends after HOLD) while the loop cannot run; the rest is
    # sent well before the header timeout, but the loop looks only after it. The bytes already
    # in the socket are read, not answered 408 (before: 408 without reading them).
    header_timeout = 0.5
    holding, held, release = threading.Event(), threading.Event(), threading.Event()

    def tick() -> None:
        if holding.is_set() and not release.is_set():
            held.set()
            release.wait(WAIT)

    sock = listening()
    engine = Engine(
        hello_app,
        [sock],
        config(header_timeout=header_timeout),
        Hooks(tick=tick, tick_interval=0.01),
    )
    with running(engine), Client(sock.getsockname()[1]) as client:
        client.send(b"GET /late HTTP/1.1\r\nHo")
        holding.set()
        assert held.wait(WAIT)
        time.sleep(header_timeout / 2)  # the head goes back to the loop meanwhile
        client.send(b"st: t\r\n\r\n")  # in time
        time.sleep(header_timeout)  # the loop is held past the deadline
        release.set()
        response = client.response()
        assert response.status == 200, response.body


def test_a_late_turn_reads_what_came_before_it_answers_408() -> None:
    # The thread serving an unfinished head could not run until its time was up, and the rest
    # came meanwhile: it is read and parsed; with nothing there, 408 and close.
    responder = Responder(WSGIBridge(hello_app, access_log=False), config(header_timeout=0.5), int)
    for rest in (b"st: t\r\n\r\n", b""):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            channel = Channel(ours, Connection(), ("127.0.0.1", "1"), {}, 0.0)
            channel.http.receive_data(b"GET / HTTP/1.1\r\nHo")
            assert channel.http.next_event() is NEED_DATA
            channel.started = time.monotonic() - 10  # its time is long up
            theirs.sendall(rest)
            turn = responder._more(channel, None)
            if rest:
                assert turn is None
                assert type(channel.http.next_event()) is RequestHead
            else:
                assert turn is Turn.CLOSE
                theirs.settimeout(WAIT)
                assert theirs.recv(65536).startswith(b"HTTP/1.1 408 ")
