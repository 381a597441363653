"""The thread strategies' scheduling steps, traced for tests: `Trace` and `TracedEngine`.

The strategies (microwsgi.server.mux, .pool) make each scheduling step a method of its own and
never report it; `TracedEngine` runs subclasses that report each step to a `Trace`, in the
thread taking it, so that a test waits for a step (an event) instead of sleeping. Steps: "spawn",
"park", "requeue", "resume", "deputy", "takeover", "sweep", "poll" (the epoll threads) and
"queue" (the pool: a connection waits for a thread).
"""

from __future__ import annotations

import threading
from typing import Any

from server_live import WAIT

from microwsgi.server import Engine
from microwsgi.server.channel import Channel
from microwsgi.server.mux import EpollThreads
from microwsgi.server.pool import PoolThreads


class Trace:
    """The scheduling steps taken: (step, client port or None, thread name), in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, int | None, str]] = []
        self._cond = threading.Condition()

    def __call__(self, step: str, channel: Channel | None = None) -> None:
        port = int(channel.peer[1]) if channel is not None else None
        with self._cond:
            self.steps.append((step, port, threading.current_thread().name))
            self._cond.notify_all()

    def wait_for(self, step: str, port: int | None = None, after: int = 0) -> int:
        """Index of the first `step` (for `port`) at or after index `after`."""

        def found() -> int | None:
            for index, (name, where, _) in enumerate(self.steps[after:], after):
                if name == step and (port is None or where == port):
                    return index
            return None

        with self._cond:
            assert self._cond.wait_for(lambda: found() is not None, WAIT), (step, self.steps)
            index = found()
            assert index is not None
            return index

    def count(self, step: str) -> int:
        with self._cond:
            return [name for name, _, _ in self.steps].count(step)


class TracedEpollThreads(EpollThreads):
    """The epoll threads, reporting each step to `trace`."""

    trace: Trace = Trace()  # replaced per engine (TracedEngine)

    def spawn(self) -> None:
        super().spawn()
        self.trace("spawn")

    def park(self, channel: Channel, now: float) -> bool:
        armed = super().park(channel, now)
        if armed:  # reported once armed: a test may count on that
            self.trace("park", channel)
        return armed

    def requeue(self, channel: Channel) -> None:
        super().requeue(channel)
        self.trace("requeue", channel)

    def resume(self) -> Channel:
        channel = super().resume()
        self.trace("resume", channel)
        return channel

    def serve_as_deputy(self, index: int) -> bool:
        self.trace("deputy")
        took_over = super().serve_as_deputy(index)
        if took_over:
            self.trace("takeover")
        return took_over

    def give_back(self, channel: Channel) -> None:
        self.trace("sweep", channel)
        super().give_back(channel)

    def poll(self, timeout: float, index: int) -> Channel | None:
        self.trace("poll")
        return super().poll(timeout, index)


class TracedPoolThreads(PoolThreads):
    """The pool, reporting when a connection has to wait for a thread."""

    trace: Trace = Trace()

    def wait_for_a_thread(self, channel: Channel) -> None:
        super().wait_for_a_thread(channel)
        self.trace("queue", channel)


class TracedEngine(Engine):
    """An engine whose thread strategy reports its steps to `trace`."""

    epoll_threads = TracedEpollThreads
    pool_threads = TracedPoolThreads

    def __init__(self, *args: Any, trace: Trace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert isinstance(self.strategy, TracedEpollThreads | TracedPoolThreads)
        self.strategy.trace = trace
