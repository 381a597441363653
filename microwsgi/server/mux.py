"""The multiplexing thread strategy (Linux): threads sharing one epoll set.

This module owns where connections wait between requests while the server is busy, and which
thread serves them. A thread that has answered a connection parks it in an epoll set that the
threads share (EPOLLONESHOT) and goes on with whichever parked connection is ready, so that
under load one thread serves request after request instead of every thread waking for its
own connection and handing the GIL around. A connection parked for `HOLD` without a request
goes back to the loop's selector ("sweeping"). A connection that used up its turn with more
requests buffered goes to the back of a ready queue, behind the connections already waiting.

At most one thread waits in epoll (the poller); the others sleep. One sleeper, the deputy,
takes over that wait when it has been left empty for `PROMOTE` seconds (every thread inside a
slow request). While any thread is serving, the poller also looks at the ready queue every
`PROMOTE` seconds, and takes from it once every busy thread has been in its turn that long.
What a thread does with a connection (a turn) is ``responder.py``; accepting and the selector
are the engine's (``loop.py``), reached only through the `Owner` interface.

A connection is owned by exactly one of: the loop, `_parked` (armed in the epoll set),
`_ready` (a request already buffered), or one thread. Whoever takes it out of `_parked` or
`_ready` (under `lock`) owns it; an epoll event for a connection no longer parked is stale and
ignored. Ownership passes under `lock`, so what one owner wrote to a `Channel` is seen by the
next. Every other field that threads share:

| field            | written by (under `lock`)   | read without the lock: why that is safe     |
|------------------|-----------------------------|---------------------------------------------|
| `_parked`        | park, sweep, `_take`,       | never                                       |
|                  | `_claim`                    |                                             |
| `_ready`         | requeue, resume, `_take`,   | `_take`'s first look: a hint, re-checked    |
|                  | sweep, `poll`               | under the lock                              |
| `_polling`       | `_wait` sets, `poll` clears | never                                       |
| `_busy`          | spawn, `_wait`, `poll`      | `_run`'s "another is busy": a hint; if      |
|                  |                             | stale, a thread looks for work once more or |
|                  |                             | sleeps (the deputy covers that)             |
| `_reserve`, `_deputy`, `_deputy_asleep`,       | never                                       |
| `_poll_forever`, `_threads`: their users       |                                             |
| `_vacated`       | `poll`; also `_take`,       | only the deputy reads it (under the lock),  |
|                  | without the lock            | to time its takeover: a float store is      |
|                  |                             | atomic, a stale one moves it < PROMOTE      |
| `_turns[i]`      | thread i only, without the  | by all: one writer a slot, atomic float     |
|                  | lock                        | stores, read as hints (as `_busy`)          |
| `_sweep_at`      | any thread, without the     | a float: two sweeps at once only split the  |
|                  | lock                        | work (each takes its connections under it)  |
| `_ending`        | `begin_stop` (loop), once;  | a bool set once: each wait checks it under  |
|                  | it then notifies every wait | the lock, so none sleeps through the stop   |

The epoll set and the waker are the kernel's to serialize.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import deque
from typing import Final

from .channel import Channel
from .responder import CLOSE, HOLD, READY, Owner, Responder
from .sockets import Waker

AVAILABLE: Final = hasattr(select, "epoll")
# How long the wait in epoll may stay empty before the deputy takes it over.
PROMOTE: Final = 0.002
# Most ready connections one look at the epoll set takes into the ready queue.
_BATCH: Final = 16
_MASK: Final = (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT) if AVAILABLE else 0


def serving_elsewhere(turns: list[float], index: int, now: float) -> bool:
    """Another thread's turn began less than PROMOTE ago: it is running Python, and will look
    for work itself. One busy for longer is held by a slow application or blocked on a client
    (a big body, a client that does not read): leaving the ready connections to it, or to the
    deputy's takeover, would only make them wait. `turns[i]`: when thread i's turn began
    (0.0: none)."""
    recent = now - PROMOTE
    return any(began > recent for i, began in enumerate(turns) if i != index)


def all_held(turns: list[float], busy: int, now: float) -> bool:
    """Every one of the `busy` threads is inside a turn that began PROMOTE or more ago (one
    between turns, or in a fresh one, is running Python and will look at the ready queue)."""
    recent = now - PROMOTE
    return sum(1 for began in turns if 0.0 < began <= recent) >= busy


class EpollThreads:
    """A bounded set of threads sharing one epoll set of parked connections.

    `_polling` says a thread waits in epoll; `_busy` counts threads serving a connection (a
    thread just started counts until it first waits); `_reserve` counts threads asleep on the
    condition. The scheduling steps (`spawn`, `park`, `requeue`, `resume`, `serve_as_deputy`,
    `give_back`, `poll`) are methods of their own so that a subclass can watch them: the tests
    trace them so, and nothing here pays for it.
    """

    def __init__(
        self, size: int, responder: Responder, owner: Owner, header_timeout: float
    ) -> None:
        self.size = size
        self._responder = responder
        self._owner = owner
        self._header_timeout = header_timeout
        self._epoll = select.epoll()
        self._waker = Waker()
        self._epoll.register(self._waker.fileno(), select.EPOLLIN)
        self._parked: dict[int, Channel] = {}
        self._ready: deque[Channel] = deque()
        # Every shared field is under this lock (see the table); public for the steps a test
        # stages. PERF: the hot paths take the lock itself (a C call); the conditions wrap it
        # in Python.
        self.lock = lock = threading.Lock()
        self._cond = threading.Condition(lock)  # sleeping threads
        self._deputy_cond = threading.Condition(lock)  # the deputy, while asleep
        self._threads: list[threading.Thread] = []
        self._polling = False
        self._vacated = 0.0  # when a thread last left the wait in epoll, or looked for work
        self._busy = 0
        self._turns = [0.0] * size  # when each thread's current turn began (0.0: none)
        self._reserve = 0
        self._deputy = False
        self._deputy_asleep = False
        self._sweep_at = 0.0
        self._poll_forever = False  # the poller waits without a timeout (nothing parked)
        self._ending = False  # the engine's loop has closed down: threads end

    # -- the engine's side -------------------------------------------------------------------

    def dispatch(self, channel: Channel) -> None:
        """Serve `channel`, which has bytes to read (loop thread)."""
        self.park(channel, wake=True)

    def forget(self, channel: Channel) -> None:
        """`channel` is being closed: end its registration, which closing may not do (the
        file may be shared with a forked child for a moment)."""
        if channel.in_epoll:
            channel.in_epoll = False
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(channel.fd)

    def begin_stop(self) -> None:
        """The engine's loop has closed down: give every waiting connection back now, even
        while all threads are busy, and wake the threads so that they end."""
        self._ending = True
        self._sweep(time.monotonic(), everything=True)
        self._waker.wake()
        with self._cond:
            self._cond.notify_all()
            self._deputy_cond.notify_all()

    def stop(self, deadline: float) -> None:
        self.begin_stop()
        with self.lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._epoll.close()
        self._waker.close()

    # -- a thread's life ---------------------------------------------------------------------

    def _run(self, index: int) -> None:
        serve, owner, turns = self._responder.serve, self._owner, self._turns
        channel = self._wait()
        while channel is not None:
            turns[index] = time.monotonic()
            turn = serve(channel)
            turns[index] = 0.0
            ending = self._ending
            if turn is CLOSE:
                owner.close(channel)
            elif ending:
                owner.hand_back(channel)
            elif turn is READY:
                channel = self._take(requeue=channel)
                continue
            else:
                self.park(channel, wake=False)
            # While another thread is serving too, leave the work to it: fewer threads taking
            # turns means fewer hand-offs of the GIL. Ending, there is no work to look for.
            retire = ending or (
                self._busy > 1 and serving_elsewhere(turns, index, time.monotonic())
            )
            channel = None if retire else self._take()
            if channel is None:
                channel = self._wait(retire=retire)

    def _wake_another(self) -> None:  # under the lock
        """Make sure a thread will wait in epoll: wake the sleeping deputy, or start a thread
        when none sleeps and the pool is not full."""
        if self._deputy_asleep:
            self._deputy_cond.notify()
        elif not self._reserve and len(self._threads) < self.size:
            self.spawn()

    def _claim(self, events: list[tuple[int, int]]) -> Channel | None:
        for fd, _ in events:
            with self.lock:
                channel = self._parked.pop(fd, None)
            if channel is not None:
                return channel
        return None

    def _sweep(self, now: float, everything: bool = False) -> None:
        """Give connections parked past their time back to the loop's selector."""
        self._sweep_at = now + HOLD / 2
        with self.lock:
            gone = [c for c in self._parked.values() if everything or c.park_until <= now]
            for channel in gone:
                del self._parked[channel.fd]
            if everything:
                gone.extend(self._ready)
                self._ready.clear()
        for channel in gone:
            self.give_back(channel)

    def _take(self, requeue: Channel | None = None) -> Channel | None:
        """A connection to serve now, without waiting (the calling thread is busy).

        `requeue` (a connection that used up its turn) goes behind those already waiting.
        Every connection one look at the epoll set finds ready joins the ready queue, so that
        the next ones are taken without asking the kernel again.
        """
        self._vacated = now = time.monotonic()
        if now >= self._sweep_at:
            self._sweep(now)
        ready = self._ready
        if ready and requeue is None:
            with self.lock:  # PERF: found ready by an earlier look, no system call
                if ready:
                    return self.resume()
        try:
            events = self._epoll.poll(0, _BATCH)
        except (OSError, ValueError):  # the engine was released under a late thread
            events = []
        if not events and requeue is None:
            return None  # PERF: the usual case needs no lock
        with self.lock:
            parked = self._parked
            for fd, _ in events:
                claimed = parked.pop(fd, None)  # None: the waker, or a stale event
                if claimed is not None:
                    ready.append(claimed)
            if requeue is not None:
                self.requeue(requeue)
            return self.resume() if ready else None

    def _vacant(self) -> bool:
        """Nobody waits in epoll (a method, so that type narrowing does not stick)."""
        return not self._polling

    def _wait(self, *, retire: bool = False) -> Channel | None:
        """Block until there is a connection to serve; None when the engine ends.

        `retire`: other threads are busy and will look for work when done, so sleep even if
        nobody waits in epoll (the deputy takes that wait if they stay busy too long).
        """
        cond = self._cond
        with cond:
            self._busy -= 1
            while True:
                if self._ending:
                    break
                if self._ready:
                    self._busy += 1
                    return self.resume()
                if not self._polling and not retire:
                    self._polling = True
                    break
                retire = False
                self._reserve += 1
                if self._deputy:
                    cond.wait()
                    self._reserve -= 1
                    continue
                self.serve_as_deputy()
                self._reserve -= 1
                if self._reserve:
                    cond.notify()  # another sleeper becomes the deputy
        if self._ending:
            self._sweep(time.monotonic(), everything=True)
            return None
        return self.poll()

    # -- the scheduling steps (a subclass may watch each) ------------------------------------

    def spawn(self) -> None:  # under the lock
        """Start another thread (it counts as busy until it first waits)."""
        self._busy += 1
        index = len(self._threads)
        thread = threading.Thread(
            target=self._run, args=(index,), name=f"microwsgi-thread-{index}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def park(self, channel: Channel, *, wake: bool) -> None:
        """Watch `channel` in the epoll set for HOLD seconds, then give it back to the loop.

        `wake`: make sure some thread will wait in epoll (the caller is not one of ours).
        """
        until = time.monotonic() + HOLD
        if channel.started is not None:
            until = min(until, channel.started + self._header_timeout)
        channel.park_until = until
        fd = channel.fd
        with self.lock:
            # Armed under the lock: whoever takes it from `_parked` finds it armed, and this
            # thread touches it no more once the lock is released.
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
                armed = False
            else:
                armed = True
                self._parked[fd] = channel
                if self._poll_forever:  # the poller must now wake to sweep
                    self._poll_forever = False
                    self._waker.wake()
                if wake and not self._polling:
                    self._wake_another()
        if not armed:
            self._owner.close(channel)

    def requeue(self, channel: Channel) -> None:  # under the lock
        """`channel` used up its turn with requests buffered: behind those already ready."""
        self._ready.append(channel)

    def resume(self) -> Channel:  # under the lock
        """The connection first in the ready queue, to serve now."""
        return self._ready.popleft()

    def serve_as_deputy(self) -> bool:  # under the lock
        """Sleep until the wait in epoll has been left empty for PROMOTE seconds; True when
        this thread is to take it over, False when the engine ends."""
        cond = self._cond
        self._deputy = True
        try:
            while not self._ending:
                if self._vacant():
                    left = self._vacated + PROMOTE - time.monotonic()
                    if left <= 0:
                        return True
                    cond.wait(left)
                elif self._busy:
                    cond.wait(PROMOTE)
                else:
                    self._deputy_asleep = True
                    self._deputy_cond.wait()
                    self._deputy_asleep = False
            return False
        finally:
            self._deputy = False

    def give_back(self, channel: Channel) -> None:
        """Hand a connection swept from the epoll set (or the ready queue) to the loop."""
        self.forget(channel)
        self._owner.hand_back(channel)

    def poll(self) -> Channel | None:
        """Wait in epoll (this thread holds `_polling`) for a ready connection."""
        epoll, cond = self._epoll, self._cond
        wake_fd = self._waker.fileno()
        while True:
            with cond:
                # A thread may fill the ready queue (a batch taken from the epoll set) and
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
                    and not self._ending
                    and (not self._ready or not all_held(self._turns, self._busy, now))
                ):
                    continue  # nothing to do, or a thread running Python will take them
                self._polling = False
                self._vacated = now
                if self._ending:
                    if channel is not None:
                        self._ready.append(channel)
                    break
                self._busy += 1
                if self._ready:
                    if channel is not None:
                        self._ready.append(channel)
                    channel = self.resume()
                self._wake_another()
                return channel
        self._sweep(now, everything=True)
        return None
