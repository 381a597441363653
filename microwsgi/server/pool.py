"""The portable worker strategy: a bounded pool of threads, each serving one connection.

This module owns the threads where epoll is missing (macOS, BSD): the loop thread hands a
readable connection to the pool, a worker serves it (``worker.py``) and then waits briefly on
that same connection for its next request before handing it back to the loop's selector.
How long it waits depends on how busy the pool is: long while another worker is idle, short
while none is, not at all with connections queued. Linux uses ``mux.py`` instead.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Final

from .channel import Channel
from .worker import CLOSE, HOLD, READY, Owner, Worker

# The worker holds its connection for HOLD only while another worker is idle; when none is,
# this short wait bounds the delay a newly arrived request can see, and with connections
# queued there is no wait.
_HOLD_BUSY: Final = 0.002


class PoolWorkers:
    """A bounded set of worker threads, started lazily, taking connections from one queue.

    Not a ThreadPoolExecutor: how long a worker waits on its connection depends on `idle` and
    `queued`, which the executor keeps to itself. `idle` counts workers waiting for a job that
    no submitted job has claimed yet: `dispatch` claims one (or starts a thread) before
    queueing, so a job is never left in the queue while a thread could have been started for
    it. `queued` counts jobs with no worker to claim them; a worker finishing its job takes
    one of those before counting as idle.
    """

    def __init__(self, size: int, worker: Worker, owner: Owner) -> None:
        self.size = size
        self.idle = 0
        self.queued = 0
        self._worker = worker
        self._owner = owner
        self._jobs: queue.SimpleQueue[Channel | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # A test hook: called with "queue" when a connection must wait for a worker (and its
        # connection), so that tests can wait for that instead of sleeping. None outside tests.
        self.trace_for_tests: Callable[[str, Channel], object] | None = None

    def dispatch(self, channel: Channel) -> None:
        """Serve `channel`, which has bytes to read (loop thread)."""
        with self._lock:
            if self.idle:
                self.idle -= 1
            elif len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._run, name=f"microwsgi-worker-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self.queued += 1
                if self.trace_for_tests is not None:
                    self.trace_for_tests("queue", channel)
        self._jobs.put(channel)

    def _hold(self) -> float:
        return HOLD if self.idle else 0.0 if self.queued else _HOLD_BUSY

    def _run(self) -> None:
        jobs, lock, owner, serve = self._jobs, self._lock, self._owner, self._worker.serve
        while (channel := jobs.get()) is not None:
            turn = serve(channel, self._hold)
            if turn is CLOSE:
                owner.close(channel)
            elif turn is READY and not owner.stopping.is_set():
                self.dispatch(channel)  # to the back of the queue: others get their turn
            else:
                owner.hand_back(channel)
            with lock:
                if self.queued:
                    self.queued -= 1
                else:
                    self.idle += 1

    def forget(self, channel: Channel) -> None:
        """`channel` is being closed (nothing to undo here)."""

    def begin_stop(self) -> None:
        """The engine is stopping: idle connections are all in the loop's selector already,
        and workers notice when they finish their connection."""

    def stop(self, deadline: float) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Nothing to release: the threads end by themselves."""
