"""The portable thread strategy (microwsgi.server.pool), where epoll is missing, over sockets.

Linux runs the epoll threads; these tests force the pool so that its paths run too: a
pipelining client giving way after its turn, the header timeout while a thread waits on its
connection, and a graceful stop (keep-alive and pipelining on both strategies are in
test_loop.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from server_live import (
    WAIT,
    App,
    Client,
    StartEngine,
    get,
    hello_app,
    pipeline,
    port_of,
)
from tracing import Trace

from microwsgi.server import Engine
from microwsgi.server.pool import PoolThreads


@pytest.fixture
def pool(start_engine: StartEngine) -> Callable[..., tuple[Engine, Trace, int]]:
    """Start an engine with the pool and its trace (stopped at the end)."""

    def start(app: Any, **options: Any) -> tuple[Engine, Trace, int]:
        trace = Trace()
        engine, port = start_engine(app, multiplex=False, trace=trace, **options)
        assert isinstance(engine.strategy, PoolThreads)
        return engine, trace, port

    return start


def test_a_pipelining_client_gives_way_after_its_turn(
    pool: Callable[..., tuple[Engine, Trace, int]],
) -> None:
    app = App("/a/0")
    _, trace, port = pool(app, threads=1)
    with Client(port) as a, Client(port) as b:
        a.send(pipeline("a", 50))
        assert app.entered["/a/0"].wait(WAIT)
        b.send(get("/b"))
        trace.wait_for("queue", port_of(b))  # B waits for the only thread
        app.gates["/a/0"].set()
        assert [a.response().body for _ in range(50)] == [f"/a/{i}".encode() for i in range(50)]
        assert b.response().body == b"/b"
        # A went to the back of the queue after its turn: B was answered after 16 of A's.
        assert app.order().index("/b") == 16
        trace.wait_for("queue", port_of(a))


def test_trickled_header_bytes_time_out_while_the_thread_waits(
    pool: Callable[..., tuple[Engine, Trace, int]],
) -> None:
    _, _, port = pool(hello_app, threads=2, header_timeout=0.3)
    with Client(port) as client:
        # The first bytes reach a thread, which then waits on this connection for the rest.
        client.send(b"GET / HTTP/1.1\r\n")
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in b"Host: t\r\nX-Slow: " + b"a" * 1000:
                client.send(bytes([byte]))
                time.sleep(0.01)
        assert client.response().status == 408


def test_graceful_stop_closes_idle_connections(
    pool: Callable[..., tuple[Engine, Trace, int]],
) -> None:
    engine, _, port = pool(hello_app, threads=2)
    with Client(port) as idle:
        assert idle.request(get()).status == 200
        engine.stop()
        assert idle.closed()
        assert engine.wait(WAIT)
