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
| `_parked`        | park, sweep, `_claim_ready`,| never                                       |
|                  | `poll`                      |                                             |
| `_ready`         | requeue, resume, sweep,     | never                                       |
|                  | `_claim_ready`, `poll`      |                                             |
| `_polling`       | `_wait` sets, `poll` clears | never                                       |
| `_busy`          | spawn, `_wait`, `poll`      | `_run`'s "another is busy": a hint; if      |
|                  |                             | stale, a thread looks for work once more or |
|                  |                             | sleeps (the deputy covers that)             |
| `_vacated`, `_reserve`, `_deputy`, `_bells`,   | never                                       |
| `_sleepers`, `_deputy_bell`, `_poll_forever`,  |                                             |
| `_threads`: their users                        |                                             |
| `_turns[i]`      | thread i only: `_next`,     | by all, and by `busy_since` (any thread):   |
|                  | `_wait`, `poll` stamp it    | one writer a slot, atomic float stores,     |
|                  | (under it), `_run` clears it| read as hints or counts taken on the fly;   |
|                  |                             | `_run` clears it without the lock           |
| `_sweep_at`      | any thread, without the     | a float: two sweeps at once only split the  |
|                  | lock                        | work (each takes its connections under it)  |
| `_ending`        | `begin_stop` (loop), once;  | a bool set once: `_run` reads it as a hint  |
|                  | it then notifies every wait | (a stale read parks a connection once more);|
|                  |                             | each wait checks it under the lock, so none |
|                  |                             | sleeps through the stop                     |

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
from .sockets import Waker, read_buffer

AVAILABLE: Final = hasattr(select, "epoll")
# How long the wait in epoll may stay empty before the deputy takes it over.
PROMOTE: Final = 0.002
# Most ready connections one look at the epoll set takes into the ready queue.
_BATCH: Final = 16
_MASK: Final = (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT) if AVAILABLE else 0


def serving_elsewhere(turns: list[float], now: float) -> bool:
    """Another thread's turn began less than PROMOTE ago: it is running Python, and will look
    for work itself. One busy for longer is held by a slow application or blocked on a client
    (a big body, a client that does not read): leaving the ready connections to it, or to the
    deputy's takeover, would only make them wait. `turns[i]`: when thread i's turn began
    (0.0: none); the caller's own is 0.0 (it is between turns).

    PERF: `max` over the turns, not a generator: 1,000 instructions less a turn.
    """
    return max(turns) > now - PROMOTE


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
        self._wake_fd = self._waker.fileno()
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._parked: dict[int, Channel] = {}
        self._ready: deque[Channel] = deque()
        # Every shared field is under this lock (see the table); public for the steps a test
        # stages.
        self.lock = threading.Lock()
        # A sleeping thread waits for its bell (`_sleep`): each thread's own, held while it is
        # not rung, and rung only while its thread sleeps on it: `_sleepers` holds the bells of
        # the threads asleep in reserve, first come first, `_deputy_bell` the deputy's while it
        # sleeps with nothing to time; whoever rings one takes it off.
        self._bells: list[threading.Lock] = []
        self._sleepers: deque[threading.Lock] = deque()
        self._deputy_bell: threading.Lock | None = None
        self._threads: list[threading.Thread] = []
        self._polling = False
        self._vacated = 0.0  # when a thread last left the wait in epoll, or looked for work
        self._busy = 0
        self._turns = [0.0] * size  # when each thread's current turn began (0.0: none)
        self._reserve = 0
        self._deputy = False
        self._sweep_at = 0.0
        self._poll_forever = False  # the poller waits without a timeout (nothing parked)
        self._ending = False  # the engine's loop has closed down: threads end

    # -- the engine's side -------------------------------------------------------------------

    def dispatch(self, channel: Channel) -> None:
        """Serve `channel`, which has bytes to read (loop thread)."""
        with self.lock:
            armed = self.park(channel, time.monotonic())
            if armed and not self._polling:
                self._wake_another()
        if not armed:
            self._owner.close(channel)

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
        with self.lock:
            while self._sleepers:
                self._sleepers.popleft().release()
            self._ring_deputy()

    def stop(self, deadline: float) -> None:
        self.begin_stop()
        with self.lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._epoll.close()
        self._waker.close()

    def busy_since(self, moment: float) -> int:
        return sum(1 for began in tuple(self._turns) if 0.0 < began < moment)

    # -- a thread's life ---------------------------------------------------------------------

    def _run(self, index: int) -> None:
        serve, owner, turns = self._responder.serve, self._owner, self._turns
        monotonic, buffer = time.monotonic, read_buffer()
        channel = self._next(None, 0.0, index, False, False)
        while channel is not None:
            turn = serve(channel, turns[index], buffer)
            turns[index] = 0.0
            # PERF: one clock reading ends this turn, and begins the next when a connection is
            # ready without waiting.
            now = monotonic()
            if turn is READY and not self._ending:
                channel = self._next(channel, now, index, True, False, True)
                continue
            if turn is CLOSE:
                owner.close(channel)
                channel = None
            elif self._ending:
                owner.hand_back(channel)
                channel = None
            # While another thread is serving too, leave the work to it: fewer threads taking
            # turns means fewer hand-offs of the GIL. Ending, there is no work to look for.
            retire = self._ending or (self._busy > 1 and serving_elsewhere(turns, now))
            channel = self._next(channel, now, index, not retire, retire)  # PERF: positional

    def _next(
        self,
        done: Channel | None,
        now: float,
        index: int,
        look: bool,
        retire: bool,
        requeue: bool = False,
    ) -> Channel | None:
        """The connection this thread serves next, after a turn on `done` (None: closed, or no
        turn yet) that ended at `now`; its turn's start goes in `_turns`. None: the engine ends.

        `done` is parked, or with `requeue` (it used up its turn with requests buffered) goes
        to the back of the ready queue, behind what the epoll set has ready too. With `look`,
        a connection ready now is taken at once: from the ready queue, else from one look at
        the epoll set, whose every ready connection joins the ready queue, so that the next
        ones are taken without asking the kernel again. Otherwise the thread waits (`_wait`;
        `retire`: as `_wait`'s).

        PERF: all of it in one hold of the lock: a request at 8 connections takes the lock
        once, one on a lone connection twice (here, and when `poll` finds it ready). The look
        at the epoll set is made under it: that system call never blocks.
        """
        if now >= self._sweep_at:
            self._sweep(now)
        lock, ready = self.lock, self._ready
        unarmed: Channel | None = None
        timeout = 0.0
        lock.acquire()  # PERF: not `with`, which costs about as much again
        try:
            if requeue and done is not None:
                self._claim_ready()  # first: what is ready goes before `done`
                self.requeue(done)
            elif done is not None and not self.park(done, now):
                unarmed = done
            if look and not ready:
                self._claim_ready()  # `done` too, should its next request be there already
            if look:
                self._vacated = now
                if ready:
                    self._turns[index] = now
                    return self.resume()
            channel = self._wait(index, retire)
            ended = self._ending
            if channel is not None:
                return channel
            if not ended:
                timeout = self._poll_timeout()
        finally:
            lock.release()
            if unarmed is not None:
                self._owner.close(unarmed)
        if ended:
            self._sweep(time.monotonic(), everything=True)
            return None
        return self.poll(timeout, index)

    def _claim_ready(self) -> None:  # under the lock
        """Every parked connection the epoll set has ready joins the ready queue."""
        try:
            events = self._epoll.poll(0, _BATCH)
        except (OSError, ValueError):  # the engine was released under a late thread
            return
        parked, ready = self._parked, self._ready
        for fd, _ in events:
            claimed = parked.pop(fd, None)  # None: the waker, or a stale event
            if claimed is not None:
                ready.append(claimed)

    def _wait(self, index: int, retire: bool) -> Channel | None:  # under the lock
        """Sleep until there is something for this thread: a ready connection (returned, its
        turn stamped), the wait in epoll (None, with `_polling` now this thread's), or the
        end (None, `_ending` set).

        `retire`: another thread is serving and will look for work when done, so sleep even
        with connections in the ready queue or nobody in epoll: they are that thread's (the
        poller takes the ready ones once every busy thread is held, the deputy the wait in
        epoll if it stays empty too long).
        """
        ready, sleepers = self._ready, self._sleepers
        self._busy -= 1
        while not self._ending:
            # PERF: retiring, even from the ready queue, leaves one thread serving request after
            # request; two taking turns hand the GIL back and forth (at 8 connections under
            # callgrind, 2,500 instructions a request).
            if ready and not retire:
                self._busy += 1
                self._turns[index] = time.monotonic()
                return self.resume()
            if not self._polling and not retire:
                self._polling = True
                return None
            retire = False
            self._reserve += 1
            if self._deputy:
                # Rung (and so taken off `sleepers`) to become the deputy, or for the stop.
                sleepers.append(self._bells[index])
                self._sleep(self._bells[index])
                self._reserve -= 1
                continue
            self.serve_as_deputy(index)
            self._reserve -= 1
            if sleepers:
                sleepers.popleft().release()  # another sleeper becomes the deputy
        return None

    def _sleep(self, bell: threading.Lock, timeout: float = -1) -> None:  # under the lock
        """Let go of the lock and sleep until `bell` rings (or `timeout` seconds), then take
        the lock again. A ring releases the bell; waking takes it back.

        PERF: a lock of the thread's own, not a `threading.Condition`: a hand-off from one
        thread to another through a Condition costs some 14,000 instructions, through a bare
        lock some 2,200 (callgrind, two threads passing a turn back and forth).
        """
        lock = self.lock
        lock.release()
        try:
            bell.acquire(True, timeout)
        finally:
            lock.acquire()

    def _ring_deputy(self) -> bool:  # under the lock
        """Wake the deputy if it sleeps with nothing to time; whether it did."""
        bell = self._deputy_bell
        if bell is None:
            return False
        self._deputy_bell = None
        bell.release()
        return True

    def _poll_timeout(self) -> float:  # under the lock
        """How long the poller waits in epoll; -1: until woken (nothing parked, nobody busy)."""
        # A thread may fill the ready queue (a batch taken from the epoll set) and then spend
        # long in one request: while one is serving, look at the ready queue every PROMOTE
        # seconds rather than leave those connections to it.
        watch = bool(self._busy or self._ready)
        forever = self._poll_forever = not self._parked and not watch
        return -1 if forever else PROMOTE if watch else HOLD / 2

    def _wake_another(self) -> None:  # under the lock
        """Make sure a thread will wait in epoll: wake the sleeping deputy, or start a thread
        when none sleeps and the pool is not full."""
        if not self._ring_deputy() and not self._reserve and len(self._threads) < self.size:
            self.spawn()

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

    def _vacant(self) -> bool:
        """Nobody waits in epoll (a method, so that type narrowing does not stick)."""
        return not self._polling

    # -- the scheduling steps (a subclass may watch each) ------------------------------------

    def spawn(self) -> None:  # under the lock
        """Start another thread (it counts as busy until it first waits)."""
        self._busy += 1
        index = len(self._threads)
        bell = threading.Lock()
        bell.acquire()  # held until rung
        self._bells.append(bell)
        thread = threading.Thread(
            target=self._run, args=(index,), name=f"microwsgi-thread-{index}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def park(self, channel: Channel, now: float) -> bool:  # under the lock
        """Watch `channel` in the epoll set until HOLD after `now` (then it goes back to the
        loop); False when it cannot be watched (a closed socket, or an engine already
        released): the caller closes it. Armed under the lock, so whoever takes it from
        `_parked` finds it armed, and the caller touches it no more once the lock is released.
        """
        until = now + HOLD
        if channel.started is not None:
            until = min(until, channel.started + self._header_timeout)
        channel.park_until = until
        fd = channel.fd
        try:
            if channel.in_epoll:
                self._epoll.modify(fd, _MASK)
            else:
                try:
                    self._epoll.register(fd, _MASK)
                except FileExistsError:  # left by a closed socket whose file was shared
                    self._epoll.modify(fd, _MASK)
                channel.in_epoll = True
        except (OSError, ValueError):
            return False
        self._parked[fd] = channel
        if self._poll_forever:  # the poller must now wake to sweep
            self._poll_forever = False
            self._waker.wake()
        return True

    def requeue(self, channel: Channel) -> None:  # under the lock
        """`channel` used up its turn with requests buffered: behind those already ready."""
        self._ready.append(channel)

    def resume(self) -> Channel:  # under the lock
        """The connection first in the ready queue, to serve now."""
        return self._ready.popleft()

    def serve_as_deputy(self, index: int) -> bool:  # under the lock
        """Sleep until the wait in epoll has been left empty for PROMOTE seconds; True when
        this thread (`index`) is to take it over, False when the engine ends."""
        bell = self._bells[index]
        self._deputy = True
        try:
            while not self._ending:
                if self._vacant():
                    left = self._vacated + PROMOTE - time.monotonic()
                    if left <= 0:
                        return True
                    self._sleep(bell, left)
                elif self._busy:
                    self._sleep(bell, PROMOTE)
                else:  # nobody busy: until the poller leaves the wait (`_wake_another`)
                    self._deputy_bell = bell
                    self._sleep(bell)
                    self._deputy_bell = None
            return False
        finally:
            self._deputy = False

    def give_back(self, channel: Channel) -> None:
        """Hand a connection swept from the epoll set (or the ready queue) to the loop."""
        self.forget(channel)
        self._owner.hand_back(channel)

    def poll(self, timeout: float, index: int) -> Channel | None:
        """Wait in epoll (this thread holds `_polling`; first for `timeout`, as
        `_poll_timeout` says) for a ready connection; None when the engine ends."""
        epoll, lock, parked, ready = self._epoll, self.lock, self._parked, self._ready
        wake_fd = self._wake_fd
        while True:
            try:
                events = epoll.poll(timeout, 1)
            except OSError:  # EINTR and the like: look again
                events = []
            now = time.monotonic()
            lock.acquire()  # PERF: not `with`, which costs about as much again
            try:
                self._poll_forever = False
                channel = None
                if events:
                    if events[0][0] == wake_fd:
                        self._waker.clear()
                    else:
                        channel = parked.pop(events[0][0], None)  # None: a stale event
                ended = self._ending
                # With nothing claimed, leave the ready queue to a thread running Python: it
                # will look there itself.
                waiting = (
                    channel is None
                    and not ended
                    and (not ready or not all_held(self._turns, self._busy, now))
                )
                if waiting:
                    timeout = self._poll_timeout()
                else:
                    self._polling = False
                    self._vacated = now
                    if ended:
                        if channel is not None:
                            ready.append(channel)
                    else:
                        self._busy += 1
                        if ready:
                            if channel is not None:
                                ready.append(channel)
                            channel = self.resume()
                        self._turns[index] = now
                        self._wake_another()
            finally:
                lock.release()
            if now >= self._sweep_at:
                self._sweep(now)
            if not waiting:
                break
        if ended:
            self._sweep(now, everything=True)
            return None
        return channel
