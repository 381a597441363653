"""The portable worker strategy (microwsgi.server.pool), where epoll is missing, over sockets.

Linux runs the multiplexing workers; these tests force the pool so that its paths run too: a
pipelining client giving way after its turn, the header timeout while a worker waits on its
connection, and a graceful stop (keep-alive and pipelining on both strategies are in
test_loop.py).
"""

from __future__ import annotations

import threading
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

from microwsgi.server import Engine
from microwsgi.server.channel import Channel
from microwsgi.server.pool import PoolWorkers


class Queued:
    """Which connections had to wait for a worker (the pool's trace)."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, step: str, channel: Channel) -> None:
        with self._cond:
            self.ports.append(int(channel.peer[1]))
            self._cond.notify_all()

    def wait_for(self, port: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: port in self.ports, WAIT)


@pytest.fixture
def pool(start_engine: StartEngine) -> Callable[..., tuple[Engine, Queued, int]]:
    """Start an engine with the portable workers and their trace (stopped at the end)."""

    def start(app: Any, **options: Any) -> tuple[Engine, Queued, int]:
        queued = Queued()
        engine, port = start_engine(app, multiplex=False, trace=queued, **options)
        assert isinstance(engine.workers, PoolWorkers)
        return engine, queued, port

    return start


def test_a_pipelining_client_gives_way_after_its_turn(
    pool: Callable[..., tuple[Engine, Queued, int]],
) -> None:
    app = App("/a/0")
    _, queued, port = pool(app, threads=1)
    with Client(port) as a, Client(port) as b:
        a.send(pipeline("a", 50))
        assert app.entered["/a/0"].wait(WAIT)
        b.send(get("/b"))
        queued.wait_for(port_of(b))  # B waits for the only worker
        app.gates["/a/0"].set()
        assert [a.response().body for _ in range(50)] == [f"/a/{i}".encode() for i in range(50)]
        assert b.response().body == b"/b"
        # A went to the back of the queue after its turn: B was answered after 16 of A's.
        assert app.order().index("/b") == 16
        queued.wait_for(port_of(a))


def test_trickled_header_bytes_time_out_while_the_worker_waits(
    pool: Callable[..., tuple[Engine, Queued, int]],
) -> None:
    _, _, port = pool(hello_app, threads=2, header_timeout=0.3)
    with Client(port) as client:
        # The first bytes reach a worker, which then waits on this connection for the rest.
        client.send(b"GET / HTTP/1.1\r\n")
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in b"Host: t\r\nX-Slow: " + b"a" * 1000:
                client.send(bytes([byte]))
                time.sleep(0.01)
        assert client.response().status == 408


def test_graceful_stop_closes_idle_connections(
    pool: Callable[..., tuple[Engine, Queued, int]],
) -> None:
    engine, _, port = pool(hello_app, threads=2)
    with Client(port) as idle:
        assert idle.request(get()).status == 200
        engine.stop()
        assert idle.closed()
        assert engine.wait(WAIT)
