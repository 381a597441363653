"""The thread strategies' hand-offs under stress: every request answered once, in order.

Many client connections (keep-alive, pipelined batches longer than a turn, some closing and
reconnecting, now and then a request slow enough to hold its thread past PROMOTE) load a few
threads for a bounded time while the interpreter switches threads every microsecond
(`sys.setswitchinterval(1e-6)`), so that the connection hand-offs between the loop, the epoll
set, the ready queue and the threads interleave in as many ways as the run allows. With
parking cut short (a small HOLD) connections also go back and forth through the loop's
selector. Nothing is timed: the checks are that each connection got each of its answers, in
order, and that the application saw each request exactly once.
"""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from server_live import WAIT, Client, StartEngine, get

from microwsgi.server import mux

DURATION = 2.0  # seconds of load per case: a bound, not an expectation
CONNECTIONS = 24
THREADS = 4
SLOW = 0.003  # a slow request holds its thread longer than mux.PROMOTE


class Recorder:
    """Answers each path with itself; counts how often each path was served."""

    def __init__(self) -> None:
        self.seen: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        with self._lock:
            self.seen[path] += 1
        if path.endswith("/slow"):
            time.sleep(SLOW)
        body = path.encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]


class Session:
    """One client: connection after connection, until the deadline, checking every answer."""

    def __init__(self, port: int, name: str, seed: int) -> None:
        self.port = port
        self.name = name
        self.rng = random.Random(seed)
        self.sent: list[str] = []
        self.error: str | None = None
        self.connections = 0
        self._seq = 0

    def _path(self, slow: bool = False) -> str:
        self._seq += 1
        path = f"/{self.name}/{self._seq}" + ("/slow" if slow else "")
        self.sent.append(path)
        return path

    def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline:
                self._connection(deadline)
        except Exception as exc:
            self.error = f"{self.name} after {len(self.sent)} requests: {exc!r}"

    def _connection(self, deadline: float) -> None:
        """Requests on one connection until it is time to reconnect; the last one says close,
        so that an answer given twice would show before the connection ends."""
        rng = self.rng
        self.connections += 1
        with Client(self.port, timeout=WAIT) as client:
            while time.monotonic() < deadline and rng.random() > 0.05:
                count = 1 if rng.random() < 0.6 else rng.randint(2, 40)
                paths = [self._path(slow=rng.random() < 0.02) for _ in range(count)]
                client.send(b"".join(get(path) for path in paths))
                for path in paths:
                    self._expect(client, path)
            last = self._path()
            client.send(get(last, extra="Connection: close\r\n"))
            self._expect(client, last)
            assert client.closed(), f"{last}: the connection stayed open after close"

    @staticmethod
    def _expect(client: Client, path: str) -> None:
        answer = client.response()
        assert (answer.status, answer.body) == (200, path.encode()), (path, answer)


@pytest.fixture
def switching_often() -> Iterator[None]:
    """Threads switch every microsecond (the interpreter's interval restored afterwards)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize(
    ("multiplex", "hold"),
    [
        pytest.param(True, None, id="epoll-threads"),
        pytest.param(True, 0.002, id="epoll-threads-short-hold"),
        pytest.param(False, None, id="pool"),
    ],
)
def test_every_request_is_answered_once_in_order_while_threads_hand_connections_around(
    start_engine: StartEngine,
    switching_often: None,
    monkeypatch: pytest.MonkeyPatch,
    multiplex: bool,
    hold: float | None,
) -> None:
    if multiplex and not mux.AVAILABLE:
        pytest.skip("epoll is Linux-only")
    if hold is not None:
        monkeypatch.setattr(mux, "HOLD", hold)
    app = Recorder()
    _, port = start_engine(app, multiplex=multiplex, threads=THREADS, keepalive_timeout=60)
    sessions = [Session(port, f"c{index}", seed=index) for index in range(CONNECTIONS)]
    deadline = time.monotonic() + DURATION
    clients = [threading.Thread(target=s.run, args=(deadline,)) for s in sessions]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert [s.error for s in sessions if s.error] == []
    sent = [path for session in sessions for path in session.sent]
    print(f"{len(sent)} requests on {sum(s.connections for s in sessions)} connections")
    assert app.seen == collections.Counter(sent), "a request served twice, or never"
