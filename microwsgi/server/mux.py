"""The multiplexing worker strategy (Linux): worker threads sharing one epoll set.

This module owns where connections wait between requests while the server is busy, and which
thread serves them. A worker that has answered a connection parks it in an epoll set that the
workers share (EPOLLONESHOT) and goes on with whichever parked connection is ready, so that
under load one thread serves request after request instead of every thread waking for its
own connection and handing the GIL around. A connection parked for `HOLD` without a request
goes back to the loop's selector ("sweeping"). A connection that used up its turn with more
requests buffered goes to the back of a ready queue, behind the connections already waiting.

At most one worker waits in epoll; the others sleep. One sleeper, the deputy, takes over that
wait when it has been left empty for `PROMOTE` seconds (every worker inside a slow request).
While any worker is serving, the one in epoll also looks at the ready queue every `PROMOTE`
seconds, and takes from it once every busy worker has been in its turn that long.
What a worker does with a connection is ``worker.py``; accepting and the selector are the
engine's (``loop.py``), reached only through the `Owner` interface.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from .channel import Channel
from .sockets import Waker
from .worker import CLOSE, HOLD, READY, Owner, Worker

AVAILABLE: Final = hasattr(select, "epoll")
# How long the wait in epoll may stay empty before the deputy takes it over.
PROMOTE: Final = 0.002
# Most ready connections one look at the epoll set takes into the ready queue.
_BATCH: Final = 16
_MASK: Final = (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT) if AVAILABLE else 0


class EpollWorkers:
    """A bounded set of threads sharing one epoll set of parked connections.

    A connection is owned by exactly one of: the loop's selector, `_parked` (armed in the
    epoll set), `_ready` (a request already buffered), or one worker. Whoever pops it from
    `_parked` (under the lock) owns it; an event for a connection no longer parked is stale
    and ignored. `_polling` says a worker waits in epoll; `_busy` counts workers serving a
    connection; `_reserve` counts workers asleep on the condition.
    """

    def __init__(self, size: int, worker: Worker, owner: Owner, header_timeout: float) -> None:
        self.size = size
        self._worker = worker
        self._owner = owner
        self._stopping = owner.stopping
        self._header_timeout = header_timeout
        self._epoll = select.epoll()
        self._waker = Waker()
        self._epoll.register(self._waker.fileno(), select.EPOLLIN)
        self._parked: dict[int, Channel] = {}
        self._ready: deque[Channel] = deque()
        # PERF: the hot paths take the lock itself (a C call); the conditions wrap it in Python.
        self._lock = lock = threading.Lock()
        self._cond = threading.Condition(lock)  # sleeping workers
        self._deputy_cond = threading.Condition(lock)  # the deputy, while asleep
        self._threads: list[threading.Thread] = []
        self._polling = False
        self._vacated = 0.0  # when a worker last left the wait in epoll, or looked for work
        self._busy = 0
        self._turns = [0.0] * size  # when each worker's current turn began (0.0: none)
        self._reserve = 0
        self._deputy = False
        self._deputy_asleep = False
        self._sweep_at = 0.0
        self._poll_forever = False  # the poller waits without a timeout (nothing parked)
        # A test hook: called with the name of each scheduling step ("park", "sweep",
        # "requeue", "resume", "spawn", "deputy", "takeover") and its connection, in the thread
        # taking it, so that tests can wait for a step instead of sleeping. None outside tests.
        self.trace_for_tests: Callable[[str, Channel | None], object] | None = None

    # -- the engine's side -------------------------------------------------------------------

    def dispatch(self, channel: Channel) -> None:
        """Serve `channel`, which has bytes to read (loop thread)."""
        self._park(channel, wake=True)

    def forget(self, channel: Channel) -> None:
        """`channel` is being closed: end its registration, which closing may not do (the
        file may be shared with a forked child for a moment)."""
        if channel.in_epoll:
            channel.in_epoll = False
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(channel.fd)

    def begin_stop(self) -> None:
        """The engine is stopping (loop thread): give every waiting connection back now, even
        while all workers are busy, and wake the workers so that they end."""
        self._sweep(time.monotonic(), everything=True)
        self._waker.wake()
        with self._cond:
            self._cond.notify_all()
            self._deputy_cond.notify_all()

    def stop(self, deadline: float) -> None:
        self.begin_stop()
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._epoll.close()
        self._waker.close()

    # -- a worker thread ---------------------------------------------------------------------

    def _run(self, index: int) -> None:
        serve, owner, stopping, turns = self._worker.serve, self._owner, self._stopping, self._turns
        channel = self._wait()
        while channel is not None:
            turns[index] = time.monotonic()
            turn = serve(channel)
            turns[index] = 0.0
            ending = stopping.is_set()
            if turn is CLOSE:
                owner.close(channel)
            elif ending:
                owner.hand_back(channel)
            elif turn is READY:
                channel = self._take(requeue=channel)
                continue
            else:
                self._park(channel, wake=False)
            # While another worker is serving too, leave the work to it: fewer threads taking
            # turns means fewer hand-offs of the GIL. Stopping, there is no work to look for.
            retire = ending or (self._busy > 1 and self._another_serving(index))
            channel = None if retire else self._take()
            if channel is None:
                channel = self._wait(retire=retire)

    def _another_serving(self, index: int) -> bool:
        """Another worker's turn began less than PROMOTE ago: it is running Python, and will
        look for work itself. One busy for longer is held by a slow application or blocked
        on a client (a big body, a client that does not read): leaving the ready
        connections to it, or to the deputy's takeover, would only make them wait."""
        recent = time.monotonic() - PROMOTE
        return any(began > recent for i, began in enumerate(self._turns) if i != index)

    def _all_held(self, now: float) -> bool:  # under the lock
        """Every busy worker is inside a turn that began PROMOTE or more ago (one between
        turns, or in a fresh one, is running Python and will look at the ready queue)."""
        recent = now - PROMOTE
        return sum(1 for began in self._turns if 0.0 < began <= recent) >= self._busy

    def _start_thread(self) -> None:  # under the lock
        self._busy += 1  # a new thread counts as busy until it waits
        index = len(self._threads)
        thread = threading.Thread(
            target=self._run, args=(index,), name=f"microwsgi-worker-{index}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        if self.trace_for_tests is not None:
            self.trace_for_tests("spawn", None)

    def _park(self, channel: Channel, *, wake: bool) -> None:
        """Watch `channel` in the epoll set for HOLD seconds, then give it back to the loop.

        `wake`: make sure some worker will wait in epoll (the caller is not a worker).
        """
        until = time.monotonic() + HOLD
        if channel.started is not None:
            until = min(until, channel.started + self._header_timeout)
        channel.park_until = until
        fd = channel.fd
        with self._lock:
            self._parked[fd] = channel
            if self._poll_forever:  # the poller must now wake to sweep
                self._poll_forever = False
                self._waker.wake()
            if wake and not self._polling:
                if self._deputy_asleep:
                    self._deputy_cond.notify()
                elif not self._reserve and len(self._threads) < self.size:
                    self._start_thread()
        if self.trace_for_tests is not None:
            self.trace_for_tests("park", channel)
        try:
            if channel.in_epoll:
                self._epoll.modify(fd, _MASK)
            else:
                try:
                    self._epoll.register(fd, _MASK)
                except FileExistsError:  # left by a closed socket whose file was shared
                    self._epoll.modify(fd, _MASK)
                channel.in_epoll = True
        except (OSError, ValueError):  # a closed socket, or an engine already released
            with self._lock:
                if self._parked.pop(fd, None) is None:
                    return  # taken already (cannot happen unarmed, but be safe)
            self._owner.close(channel)

    def _claim(self, events: list[tuple[int, int]]) -> Channel | None:
        for fd, _ in events:
            with self._lock:
                channel = self._parked.pop(fd, None)
            if channel is not None:
                return channel
        return None

    def _sweep(self, now: float, everything: bool = False) -> None:
        """Give connections parked past their time back to the loop's selector."""
        self._sweep_at = now + HOLD / 2
        with self._lock:
            gone = [c for c in self._parked.values() if everything or c.park_until <= now]
            for channel in gone:
                del self._parked[channel.fd]
            if everything:
                gone.extend(self._ready)
                self._ready.clear()
        for channel in gone:
            self.forget(channel)
            if self.trace_for_tests is not None:
                self.trace_for_tests("sweep", channel)
            self._owner.hand_back(channel)

    def _take(self, requeue: Channel | None = None) -> Channel | None:
        """A connection to serve now, without waiting (the calling worker is busy).

        `requeue` (a connection that used up its turn) goes behind those already waiting.
        Every connection one look at the epoll set finds ready joins the ready queue, so that
        the next ones are taken without asking the kernel again.
        """
        self._vacated = now = time.monotonic()
        if now >= self._sweep_at:
            self._sweep(now)
        ready = self._ready
        if ready and requeue is None:
            with self._lock:  # PERF: found ready by an earlier look, no system call
                if ready:
                    return self._pop_ready()
        try:
            events = self._epoll.poll(0, _BATCH)
        except (OSError, ValueError):  # the engine was released under a late worker
            events = []
        if not events and requeue is None:
            return None  # PERF: the usual case needs no lock
        with self._lock:
            parked = self._parked
            for fd, _ in events:
                claimed = parked.pop(fd, None)  # None: the waker, or a stale event
                if claimed is not None:
                    ready.append(claimed)
            if requeue is not None:
                ready.append(requeue)
                if self.trace_for_tests is not None:
                    self.trace_for_tests("requeue", requeue)
            return self._pop_ready() if ready else None

    def _pop_ready(self) -> Channel:  # under the lock
        channel = self._ready.popleft()
        if self.trace_for_tests is not None:
            self.trace_for_tests("resume", channel)
        return channel

    def _vacant(self) -> bool:
        """Nobody waits in epoll (a method, so that type narrowing does not stick)."""
        return not self._polling

    def _wait(self, *, retire: bool = False) -> Channel | None:
        """Block until there is a connection to serve; None when the engine stops.

        `retire`: other workers are busy and will look for work when done, so sleep even if
        nobody waits in epoll (the deputy takes that wait if they stay busy too long).
        """
        cond, stopping = self._cond, self._stopping
        with cond:
            self._busy -= 1
            while True:
                if stopping.is_set():
                    break
                if self._ready:
                    self._busy += 1
                    return self._pop_ready()
                if not self._polling and not retire:
                    self._polling = True
                    break
                retire = False
                self._reserve += 1
                if self._deputy:
                    cond.wait()
                    self._reserve -= 1
                    continue
                self._serve_as_deputy()
                self._reserve -= 1
                if self._reserve:
                    cond.notify()  # another sleeper becomes the deputy
        if stopping.is_set():
            self._sweep(time.monotonic(), everything=True)
            return None
        return self._poll()

    def _serve_as_deputy(self) -> None:  # under the lock
        """Sleep until the wait in epoll has been left empty for PROMOTE seconds."""
        cond, stopping = self._cond, self._stopping
        self._deputy = True
        if self.trace_for_tests is not None:
            self.trace_for_tests("deputy", None)
        while not stopping.is_set():
            if self._vacant():
                left = self._vacated + PROMOTE - time.monotonic()
                if left <= 0:
                    if self.trace_for_tests is not None:
                        self.trace_for_tests("takeover", None)
                    break
                cond.wait(left)
            elif self._busy:
                cond.wait(PROMOTE)
            else:
                self._deputy_asleep = True
                self._deputy_cond.wait()
                self._deputy_asleep = False
        self._deputy = False

    def _poll(self) -> Channel | None:
        """Wait in epoll (this worker holds `_polling`) for a ready connection."""
        epoll, cond, stopping = self._epoll, self._cond, self._stopping
        wake_fd = self._waker.fileno()
        while True:
            with cond:
                # A worker may fill the ready queue (a batch taken from the epoll set) and
                # then spend long in one request: while one is serving, look at the ready
                # queue every PROMOTE seconds rather than leave those connections to it.
                watch = bool(self._busy or self._ready)
                forever = self._poll_forever = not self._parked and not watch
            try:
                events = epoll.poll(-1 if forever else PROMOTE if watch else HOLD / 2, 1)
            except OSError:  # EINTR and the like: look again
                events = []
            if events and events[0][0] == wake_fd:
                self._waker.clear()
                events = []
            channel = self._claim(events)
            now = time.monotonic()
            if now >= self._sweep_at:
                self._sweep(now)
            with cond:
                self._poll_forever = False
                if (
                    channel is None
                    and not stopping.is_set()
                    and (not self._ready or not self._all_held(now))
                ):
                    continue  # nothing to do, or a worker running Python will take them
                self._polling = False
                self._vacated = now
                if stopping.is_set():
                    if channel is not None:
                        self._ready.append(channel)
                    break
                self._busy += 1
                if self._ready:
                    if channel is not None:
                        self._ready.append(channel)
                    channel = self._pop_ready()
                if self._deputy_asleep:
                    self._deputy_cond.notify()
                elif not self._reserve and len(self._threads) < self.size:
                    self._start_thread()
                return channel
        self._sweep(now, everything=True)
        return None
