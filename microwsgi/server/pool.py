"""The portable thread strategy: a bounded pool of threads, each serving one connection.

This module owns the threads where epoll is missing (macOS, BSD): the loop thread hands a
readable connection to the pool, a thread serves it (a turn, ``responder.py``) and then waits
briefly on that same connection for its next request before handing it back to the loop's
selector. How long it waits depends on how busy the pool is: long while another thread is
idle, short while none is, not at all with connections queued or once the engine closes
down. Linux uses ``mux.py`` instead.

Shared state (the loop thread and every pool thread use it):

| field            | written by (under `_lock`)  | read without the lock: why that is safe     |
|------------------|-----------------------------|---------------------------------------------|
| `idle`, `queued` | `dispatch` (the loop, or a  | `_hold`: a hint for how long to wait on a   |
|                  | thread whose turn ended     | connection, wrong by one at most            |
|                  | READY), `_run`              |                                             |
| `_threads`       | `dispatch` (appends)        | never                                       |
| `_turns[i]`      | thread i only, without the  | `busy_since` (any thread): one writer a     |
|                  | lock                        | slot, atomic float stores, a count on the fly|
| `_ending`        | `begin_stop` (loop), once,  | a bool set once: a thread that misses it    |
|                  | without the lock            | serves one turn more as before the stop     |

`_jobs` is a `SimpleQueue`, safe between threads by itself.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Final

from .channel import Channel
from .responder import CLOSE, HOLD, READY, Owner, Responder
from .sockets import read_buffer

# The thread holds its connection for HOLD only while another thread is idle; when none is,
# this short wait bounds the delay a newly arrived request can see, and with connections
# queued there is no wait.
_HOLD_BUSY: Final = 0.002


class PoolThreads:
    """A bounded set of threads, started lazily, taking connections from one queue.

    Not a ThreadPoolExecutor: how long a thread waits on its connection depends on `idle` and
    `queued`, which the executor keeps to itself. `idle` counts threads waiting for a job that
    no submitted job has claimed yet: `dispatch` claims one (or starts a thread) before
    queueing, so a job is never left in the queue while a thread could have been started for
    it. `queued` counts jobs with no thread to claim them; a thread finishing its job takes
    one of those before counting as idle.
    """

    def __init__(self, size: int, responder: Responder, owner: Owner) -> None:
        self.size = size
        self.idle = 0
        self.queued = 0
        self._responder = responder
        self._owner = owner
        self._jobs: queue.SimpleQueue[Channel | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._ending = False
        self._turns = [0.0] * size  # when each thread's current turn began (0.0: none)

    def dispatch(self, channel: Channel) -> None:
        """Serve `channel`, which has bytes to read (loop thread)."""
        with self._lock:
            if self.idle:
                self.idle -= 1
            elif len(self._threads) < self.size:
                index = len(self._threads)
                thread = threading.Thread(
                    target=self._run, args=(index,), name=f"microwsgi-thread-{index}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self.wait_for_a_thread(channel)
        self._jobs.put(channel)

    def wait_for_a_thread(self, channel: Channel) -> None:  # under the lock
        """Every thread is busy: `channel` waits in the queue (a step the tests watch)."""
        self.queued += 1

    def _hold(self) -> float:
        if self._ending:
            return 0.0
        return HOLD if self.idle else 0.0 if self.queued else _HOLD_BUSY

    def _run(self, index: int) -> None:
        jobs, lock, owner, serve = self._jobs, self._lock, self._owner, self._responder.serve
        buffer, turns = read_buffer(), self._turns
        while (channel := jobs.get()) is not None:
            turns[index] = began = time.monotonic()
            turn = serve(channel, began, buffer, self._hold)
            turns[index] = 0.0
            if turn is CLOSE:
                owner.close(channel)
            elif turn is READY and not self._ending:
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
        """The engine closes down: idle connections are all in the loop's selector already,
        and a thread gives its connection back (to be closed) when its turn ends."""
        self._ending = True

    def stop(self, deadline: float) -> None:
        with self._lock:  # a thread whose turn ended READY may be starting another
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Nothing to release: the threads end by themselves."""

    def busy_since(self, moment: float) -> int:
        return sum(1 for began in tuple(self._turns) if 0.0 < began < moment)
