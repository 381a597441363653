"""Every path of the epoll threads (microwsgi.server.mux), driven over real sockets.

The turn limit with a client pipelining 50 requests while another waits, the ready queue
(a connection that used up its turn resumed behind the others, also by another thread),
parking and sweeping, the deputy taking over the wait in epoll while every other thread is
inside a slow request, and a stop with connections parked and queued. The threads report each
scheduling step to a trace (tracing.py); tests wait for steps (events), never for time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from server_live import WAIT, App, Client, StartEngine, get, pipeline, port_of
from tracing import Trace, TracedEpollThreads

from microwsgi.server import Engine, mux
from microwsgi.server.channel import Channel
from microwsgi.server.protocol import Connection
from microwsgi.server.responder import Turn

pytestmark = pytest.mark.skipif(not mux.AVAILABLE, reason="epoll is Linux-only")


@pytest.fixture
def long_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parked connections stay parked (for a minute, not 50 ms): a test that needs one to be
    in the epoll set when a turn ends then does not depend on how fast the machine is."""
    monkeypatch.setattr(mux, "HOLD", 60.0)


@pytest.fixture
def engine(start_engine: StartEngine) -> Callable[..., tuple[Engine, Trace, int]]:
    """Start an engine with epoll threads and a trace (stopped at the end)."""

    def start(app: Any, **options: Any) -> tuple[Engine, Trace, int]:
        trace = Trace()
        started, port = start_engine(app, multiplex=True, trace=trace, **options)
        assert isinstance(started.strategy, mux.EpollThreads)
        return started, trace, port

    return start


def test_a_pipelining_client_gives_way_after_its_turn(
    engine: Callable[..., tuple[Engine, Trace, int]], long_hold: None
) -> None:
    app = App("/a/0")
    _, trace, port = engine(app, threads=1)
    with Client(port) as a, Client(port) as b:
        a.send(pipeline("a", 50))
        assert app.entered["/a/0"].wait(WAIT)  # the only thread is busy with A
        b.send(get("/b"))
        trace.wait_for("park", port_of(b))  # B waits in the epoll set
        app.gates["/a/0"].set()
        assert [a.response().body for _ in range(50)] == [f"/a/{i}".encode() for i in range(50)]
        assert b.response().body == b"/b"
        # A's first turn was TURN_LIMIT requests; then B, then A again from the ready queue.
        assert app.order().index("/b") == 16
        requeued = trace.wait_for("requeue", port_of(a))
        trace.wait_for("resume", port_of(a), after=requeued)


def test_a_queued_connection_is_resumed_by_another_thread(
    engine: Callable[..., tuple[Engine, Trace, int]], long_hold: None
) -> None:
    app = App("/b", "/a/0", "/c")
    _, trace, port = engine(app, threads=2)
    with Client(port) as a, Client(port) as b, Client(port) as c:
        b.send(get("/b"))
        assert app.entered["/b"].wait(WAIT)  # one thread held by B
        a.send(pipeline("a", 40))
        assert app.entered["/a/0"].wait(WAIT)  # the other by A
        c.send(get("/c"))
        trace.wait_for("park", port_of(c))  # nobody free: C waits in the epoll set
        app.gates["/a/0"].set()
        # A's turn ends: its thread takes C, which was waiting, and queues A behind it.
        assert app.entered["/c"].wait(WAIT)
        requeued = trace.wait_for("requeue", port_of(a))
        app.gates["/b"].set()  # B's thread is free now and finds A in the ready queue
        resumed = trace.wait_for("resume", port_of(a), after=requeued)
        app.gates["/c"].set()
        assert [a.response().body for _ in range(40)] == [f"/a/{i}".encode() for i in range(40)]
        assert b.response().body == b"/b" and c.response().body == b"/c"
    assert trace.steps[requeued][2] == app.thread_of("/a/15") == app.thread_of("/c")
    assert trace.steps[resumed][2] == app.thread_of("/a/16") == app.thread_of("/b")


def test_an_idle_connection_is_parked_then_swept_back_to_the_loop(
    engine: Callable[..., tuple[Engine, Trace, int]],
) -> None:
    _, trace, port = engine(App(), threads=2)
    with Client(port) as client:
        assert client.request(get("/1")).body == b"/1"
        trace.wait_for("park", port_of(client))
        # (A park is reported once the connection is armed, so its sweep may come first.)
        swept = trace.wait_for("sweep", port_of(client))
        # Back in the loop's selector: the next request comes through it and is answered.
        assert client.request(get("/2")).body == b"/2"
        trace.wait_for("park", port_of(client), after=swept)


def test_the_deputy_takes_over_the_wait_while_every_other_thread_is_busy(
    engine: Callable[..., tuple[Engine, Trace, int]],
) -> None:
    app = App("/a", "/c")
    _, trace, port = engine(app, threads=3)
    with Client(port) as a, Client(port) as b, Client(port) as c, Client(port) as d:
        a.send(get("/a"))
        assert app.entered["/a"].wait(WAIT)
        assert b.request(get("/b")).body == b"/b"
        # B's thread has nothing left to do while another thread waits in epoll: it sleeps
        # as the deputy.
        deputy = trace.wait_for("deputy")
        c.send(get("/c"))
        assert app.entered["/c"].wait(WAIT)  # the thread that waited in epoll is held too
        # Nobody waits in epoll now, and the pool is at its size: only the deputy can answer.
        trace.wait_for("takeover", after=deputy)
        assert d.request(get("/d")).body == b"/d"
        app.gates["/a"].set()
        app.gates["/c"].set()
        assert a.response().body == b"/a" and c.response().body == b"/c"


def test_threads_start_when_work_comes_and_never_past_the_cap(
    engine: Callable[..., tuple[Engine, Trace, int]],
) -> None:
    app = App("/0", "/1", "/2")
    _, trace, port = engine(app, threads=2)
    assert trace.steps == []  # listening, and not one serving thread yet
    clients = [Client(port) for _ in range(3)]
    try:
        for index in (0, 1):
            clients[index].send(get(f"/{index}"))
            assert app.entered[f"/{index}"].wait(WAIT)
        clients[2].send(get("/2"))
        trace.wait_for("park", port_of(clients[2]))  # both threads held: it has to wait
        app.gates["/0"].set()
        app.gates["/1"].set()
        app.gates["/2"].set()
        assert [c.response().body for c in clients] == [b"/0", b"/1", b"/2"]
    finally:
        for client in clients:
            client.close()
    assert trace.count("spawn") == 2


def test_stopping_closes_parked_and_queued_connections(
    engine: Callable[..., tuple[Engine, Trace, int]], long_hold: None
) -> None:
    app = App("/a/0", "/b")
    started, trace, port = engine(app, threads=1)
    with Client(port) as a, Client(port) as b, Client(port) as idle:
        assert idle.request(get("/idle")).status == 200
        a.send(pipeline("a", 40))
        assert app.entered["/a/0"].wait(WAIT)
        b.send(get("/b"))
        trace.wait_for("park", port_of(b))
        app.gates["/a/0"].set()
        assert app.entered["/b"].wait(WAIT)  # A's turn is over: A waits in the ready queue
        trace.wait_for("requeue", port_of(a))
        started.stop()
        assert idle.closed()
        app.gates["/b"].set()
        answer = b.response()
        assert answer.body == b"/b" and answer.header("Connection") == "close"
        assert [a.response().body for _ in range(16)] == [f"/a/{i}".encode() for i in range(16)]
        assert a.closed()  # the rest of A's pipeline is never answered: we were stopping
        assert started.wait(WAIT)
    assert "/a/16" not in app.order()


class FakeOwner:
    def __init__(self) -> None:
        self.closed: list[Channel] = []
        self.handed_back: list[Channel] = []

    def hand_back(self, channel: Channel) -> None:
        self.handed_back.append(channel)

    def close(self, channel: Channel) -> None:
        self.closed.append(channel)
        channel.sock.close()


class IdleResponder:
    def serve(self, channel: Channel, hold: Any = None) -> Turn:
        return Turn.IDLE


def epoll_threads(owner: FakeOwner, responder: Any, size: int = 1) -> TracedEpollThreads:
    threads = TracedEpollThreads(size, responder, owner, header_timeout=10.0)
    threads.trace = Trace()
    return threads


def channel_for(sock: socket.socket) -> Channel:
    return Channel(sock, Connection(), ("127.0.0.1", "1"), {}, 0.05)


def stop(threads: mux.EpollThreads) -> None:
    threads.stop(time.monotonic() + WAIT)
    threads.close()


def test_a_descriptor_left_in_the_epoll_set_is_reused() -> None:
    # A socket closed while a forked child still held its file stays registered; a new socket
    # with the same number must still be watched. Here the leftover registration is that of
    # another channel on the same descriptor, never unregistered.
    owner = FakeOwner()
    threads = epoll_threads(owner, IdleResponder())
    ours, theirs = socket.socketpair()
    try:
        threads.dispatch(channel_for(ours))  # the leftover registration
        channel = channel_for(ours)
        threads.dispatch(channel)
        assert channel.in_epoll and not owner.closed
        theirs.send(b"x")  # readable: a thread claims it
    finally:
        stop(threads)
        ours.close()
        theirs.close()


def test_a_connection_that_cannot_be_watched_is_closed() -> None:
    owner = FakeOwner()
    threads = epoll_threads(owner, IdleResponder())
    ours, theirs = socket.socketpair()
    channel = channel_for(ours)
    ours.close()  # the descriptor is gone: epoll refuses it
    try:
        threads.dispatch(channel)
        assert owner.closed == [channel] and not channel.in_epoll
    finally:
        stop(threads)
        theirs.close()


class HeldResponder:
    """Serves a connection by waiting until the test lets it go (a slow application)."""

    def __init__(self, *channels: Channel) -> None:
        self.entered = {channel: threading.Event() for channel in channels}
        self.release = threading.Event()

    def serve(self, channel: Channel, hold: Any = None) -> Turn:
        self.entered[channel].set()
        assert self.release.wait(WAIT)
        return Turn.CLOSE


def test_a_connection_left_in_the_ready_queue_is_taken_while_its_thread_is_held() -> None:
    # A thread's batch take from the epoll set leaves connections in the ready queue, and the
    # thread may then spend long in one request: the thread waiting in epoll takes them (once
    # the held one's turn is older than PROMOTE), instead of sleeping on with nothing parked.
    owner = FakeOwner()
    a_ours, a_theirs = socket.socketpair()
    b_ours, b_theirs = socket.socketpair()
    a, b = channel_for(a_ours), channel_for(b_ours)
    responder = HeldResponder(a, b)
    threads = epoll_threads(owner, responder, size=2)
    try:
        a_theirs.send(b"GET / HTTP/1.1\r\n\r\n")
        threads.dispatch(a)
        assert responder.entered[a].wait(WAIT)  # one thread held by A
        # The other one waits in epoll, with nothing parked. (The first "poll" is the thread
        # that went on to take A.)
        threads.trace.wait_for("poll", after=threads.trace.wait_for("poll") + 1)
        with threads.lock:
            threads.requeue(b)  # what A's thread's batch take left behind
        assert responder.entered[b].wait(WAIT), "the ready connection waited for the held thread"
    finally:
        responder.release.set()
        stop(threads)
        for sock in (a_ours, a_theirs, b_ours, b_theirs):
            sock.close()


def test_only_a_thread_that_began_its_turn_just_now_counts_as_serving() -> None:
    # A thread holding a connection for long (a slow app, a client that does not read) does
    # not make the others leave the ready connections to it.
    now = time.monotonic()
    turns = [now - 1.0, now, 0.0]  # long busy, just began, idle
    assert mux.serving_elsewhere(turns, 0, now) and mux.serving_elsewhere(turns, 2, now)
    assert not mux.serving_elsewhere(turns, 1, now)


def test_the_poller_takes_from_the_ready_queue_only_when_every_busy_thread_is_held() -> None:
    now = time.monotonic()
    assert mux.all_held([now - 1.0, now - 1.0, 0.0], 2, now)
    assert not mux.all_held([now - 1.0, now, 0.0], 2, now)  # one runs Python: it will look
