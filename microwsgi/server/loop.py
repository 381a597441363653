"""`Engine`: serves a WSGI application on listening sockets it is handed, until told to stop.

This module owns the loop thread: accepting connections (up to `max_connections` open at
once; past that they wait in the backlog), one selector that watches every idle or keep-alive
connection (so an idle connection costs a file descriptor and a few hundred bytes, never a
thread), the deadlines of idle connections (the header timeout answers 408, the keep-alive
timeout closes silently), the embedder's periodic `tick`, and a graceful stop: stop
accepting, close idle connections (or, with `keepalive_on_stop`, keep them that long for a
request already on its way, answered with `Connection: close`), let in-flight requests finish
for at most `shutdown_timeout`. When a connection becomes readable the loop hands it to the
thread strategy (``mux.py`` on Linux, ``pool.py`` elsewhere), whose threads answer it
(``responder.py``) and give it back.

The engine binds nothing and installs no signal handler: `DevServer` (``devserver.py``) does
both for the development server, and a gunicorn worker does its own.

Under a gunicorn with several workers sharing the listening sockets, the embedder's
`defer_accept` hook may leave a connection to a worker holding fewer (``gunicorn/shares.py``):
the loop then looks away from the listeners for `DEFER_ACCEPT` and takes the connection if it
still waits.

The loop thread alone touches the selector, the deadline heap, the listeners, `_idle_until`,
`_look_again`, `_deferred` and a connection's `registered` and `deadline`. What the serving
threads (and `stop()`, from any thread or a signal handler) share with it takes no lock:

| field            | written by                  | why that is safe                            |
|------------------|-----------------------------|---------------------------------------------|
| `_returned`      | threads append (hand_back); | a deque: append and popleft are atomic      |
|                  | the loop pops               |                                             |
| `_wake_pending`  | threads set it, then wake;  | the loop clears it after the waker and      |
|                  | the loop clears it          | before taking `_returned`: a connection     |
|                  |                             | handed back after that finds it clear and   |
|                  |                             | wakes the loop again (never a lost wake-up) |
| `_open`          | the loop adds; any thread   | a set: add and discard are atomic           |
|                  | discards (close)            |                                             |
| `_accepting`,    | the loop                    | a closing thread reads them to decide to    |
| `_ending`        |                             | wake the loop; the loop counts `_open` again|
|                  |                             | after writing them, so one of the two sees  |
|                  |                             | the other                                   |
| `_stop_asked`,   | `stop()`, then it wakes the | flags the loop reads after every wake-up    |
| `_force`         | loop                        |                                             |

`stopping` and `_done` are Events.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from .._wsgi import WSGIApp
from . import mux
from .channel import Channel
from .config import Hooks, ServerConfig
from .pool import PoolThreads
from .protocol.connection import Connection
from .responder import HOLD, Responder, ThreadStrategy, time_out
from .sockets import Waker, bytes_waiting, prepare_client
from .wsgi import WSGIBridge

log = logging.getLogger("microwsgi.server")

# Deadline entries allowed beyond twice the open connections before the stale ones go.
_HEAP_SLACK: Final = 64
_OUT_OF_DESCRIPTORS: Final = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# How long the loop looks away from the listening sockets when `Hooks.defer_accept` leaves a
# connection to another process: long enough for that process's loop to wake and take it (a
# GIL switch interval), short enough that a connection nobody else takes waits only that long.
DEFER_ACCEPT: Final = 0.005
_NEVER: Final = float("inf")


class Engine:
    """Serves `app` on `listeners` (already listening: TCP over IPv4 or IPv6, or unix sockets).

    `run()` blocks in the calling thread (the loop thread) until `stop()`, then returns once
    in-flight requests are done or `shutdown_timeout` has passed; it closes the listening
    sockets it was handed. `stop()` may be called from any thread or a signal handler.
    `server_name` is the environ's SERVER_NAME (default: each socket's own address);
    `extra_environ` holds keys every request's environ starts with (say `wsgi.multiprocess`
    under a pre-forking server), at no cost per request. `multiplex` picks the thread
    strategy (default: the epoll threads where epoll exists): `epoll_threads` or
    `pool_threads`, which a subclass may replace (the tests' subclass traces their steps).
    """

    epoll_threads: ClassVar[type[mux.EpollThreads]] = mux.EpollThreads
    pool_threads: ClassVar[type[PoolThreads]] = PoolThreads

    def __init__(
        self,
        app: WSGIApp,
        listeners: Sequence[socket.socket],
        config: ServerConfig | None = None,
        hooks: Hooks | None = None,
        *,
        server_name: str | None = None,
        extra_environ: Mapping[str, Any] | None = None,
        multiplex: bool | None = None,
    ) -> None:
        if not listeners:
            raise ValueError("an engine needs at least one listening socket")
        self.config = config = config if config is not None else ServerConfig()
        config.check()
        self.hooks = hooks = hooks if hooks is not None else Hooks()
        # Set when a stop begins (or before the last of `max_requests` is answered): no more
        # accepting, and every answer says close. `stop()` only raises the flags below,
        # because it may run in a signal handler, where taking an event's lock could deadlock
        # with the very code the signal interrupted.
        self.stopping = threading.Event()
        self._ending = False  # the loop has closed down: it waits for in-flight requests only
        self._stop_asked = False
        self._force = False  # stop waiting for in-flight requests
        self._limits = config.limits()
        self._bridge = WSGIBridge(
            app,
            io_timeout=config.io_timeout,
            stopping=self.stopping,
            access_log=config.access_log,
            hooks=hooks,
        )
        self._listeners = {
            sock: {**self._listener_environ(sock, server_name), **(extra_environ or {})}
            for sock in listeners
        }
        for sock in listeners:
            sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._waker = Waker()
        self._wake_pending = False
        self._returned: deque[Channel] = deque()
        self._deadlines: list[tuple[float, int, Channel]] = []
        self._sequence = itertools.count()
        self._open: set[Channel] = set()
        self._accepting = False
        self._accept_error_logged = 0.0
        self._look_again = _NEVER  # when accepting resumes after leaving a connection to others
        self._deferred = False  # the last accept was left to others: take the next one
        self._done = threading.Event()
        self._idle_until = float("inf")  # while stopping, when idle connections are closed
        responder = Responder(self._bridge, config, self._stop_after_this_request)
        if multiplex is None:
            multiplex = mux.AVAILABLE
        self.strategy: ThreadStrategy = (
            self.epoll_threads(config.threads, responder, self, config.header_timeout)
            if multiplex
            else self.pool_threads(config.threads, responder, self)
        )

    def _listener_environ(self, sock: socket.socket, server_name: str | None) -> dict[str, Any]:
        if sock.family == socket.AF_UNIX:
            name, port = "localhost", "80"  # no address to speak of: what a2wsgi says too
        else:
            address = sock.getsockname()
            name, port = str(address[0]), str(address[1])
        return self._bridge.base_environ(server_name or name, port)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def busy_threads(self, since: float) -> int:
        """How many threads have been answering one connection since before `since`
        (`time.monotonic()`): inside one turn, that is its request, or the requests a
        pipelining client had already sent (TURN_LIMIT at most). From any thread: the count
        is taken on the fly (a gunicorn worker's heartbeat asks it)."""
        return self.strategy.busy_since(since)

    # -- running and stopping ---------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """Whether the loop takes new connections (not at `max_connections`, not stopping)."""
        return self._accepting

    def stop(self, *, force: bool = False) -> None:
        """Stop gracefully (`force`: without waiting for in-flight requests); returns at once.

        Safe from any thread and from a signal handler.
        """
        if force:
            self._force = True
        self._stop_asked = True
        self._waker.wake()

    def _stop_after_this_request(self) -> None:
        # A serving thread, before answering: set the event now so that this answer already
        # says `Connection: close`.
        self.stopping.set()
        self.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until `run()` has finished; False on timeout."""
        return self._done.wait(timeout)

    def run(self) -> None:
        """Serve until `stop()`; then close down gracefully and return."""
        sel = self._selector
        sel.register(self._waker.fileno(), selectors.EVENT_READ, self)
        self._resume_accepting()
        tick, interval = self.hooks.tick, self.hooks.tick_interval
        next_tick = time.monotonic() + interval if tick is not None else float("inf")
        deadline: float | None = None  # of a stop that keeps idle connections a while
        try:
            while True:
                if self._stop_asked:
                    if deadline is None and not self._force:
                        deadline = self._begin_stop()
                    if deadline is None or self._force or not self._open:
                        break
                    if time.monotonic() >= deadline:
                        break
                timeout = self._select_timeout(
                    min(next_tick, self._look_again, deadline or next_tick)
                )
                for key, _ in sel.select(timeout):
                    data = key.data
                    if type(data) is Channel:
                        self._dispatch(data)
                    elif data is self:
                        self._take_returned()
                    else:
                        self.accept(key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                self._expire(now)
                if now >= self._look_again:
                    self._look_again = _NEVER
                    self._accept_again()
                if now >= next_tick:
                    next_tick = now + interval
                    self._tick()
        finally:
            self._close_down(deadline)

    def _begin_stop(self) -> float | None:
        """With `keepalive_on_stop`: stop accepting, let answers say close, and give idle
        connections that long for a request already on its way; the loop serves on until
        every connection is closed or `shutdown_timeout` has passed (the deadline returned).
        None: no such wait, close down at once."""
        keep = self.config.keepalive_on_stop
        if not keep:
            return None
        self._pause_accepting()
        for sock in self._listeners:
            sock.close()  # this engine's handle on it: a shared socket goes on in others
        now = time.monotonic()
        self._idle_until = now + keep
        for key in list(self._selector.get_map().values()):
            channel = key.data
            if type(channel) is Channel and channel.deadline > self._idle_until:
                channel.deadline = self._idle_until
                self._push_deadline(channel)
        self.stopping.set()  # last: whoever waits for it finds the listeners closed
        return now + self.config.shutdown_timeout

    def _tick(self) -> None:
        assert self.hooks.tick is not None
        try:
            self.hooks.tick()
        except Exception:
            log.exception("error in the tick hook")

    def _select_timeout(self, next_tick: float) -> float | None:
        wake_at = min(self._deadlines[0][0] if self._deadlines else next_tick, next_tick)
        if wake_at == float("inf"):
            return None
        return max(0.0, wake_at - time.monotonic())

    def _close_down(self, deadline: float | None) -> None:
        """Stop accepting, close idle connections, wait (bounded) for in-flight ones."""
        self.stopping.set()
        self._ending = True
        sel = self._selector
        self._pause_accepting()
        for sock in self._listeners:
            sock.close()  # stop accepting at once; the backlog is refused
        for key in list(sel.get_map().values()):
            if type(key.data) is Channel:
                sel.unregister(key.fileobj)
                key.data.registered = False
                self.close(key.data)
        self.strategy.begin_stop()  # parked connections come back to be closed
        if deadline is None:
            deadline = time.monotonic() + self.config.shutdown_timeout
        tick, interval = self.hooks.tick, self.hooks.tick_interval
        next_tick = time.monotonic() + interval
        while self._open and not self._force:
            now = time.monotonic()
            if now >= deadline:
                log.warning("%d connection(s) still busy at shutdown", len(self._open))
                break
            if tick is not None and now >= next_tick:
                next_tick = now + interval
                self._tick()
            sel.select(min(deadline, next_tick if tick is not None else deadline) - now)
            self._take_returned()
        stop_by = min(deadline, time.monotonic() + 1.0)
        self.strategy.stop(stop_by)
        self.release()

    def release(self) -> None:
        """Close the listening sockets and all the engine holds (`run()` ends with this; call
        it yourself only for an engine that will never run)."""
        for sock in self._listeners:
            sock.close()
        self._selector.close()
        self._waker.close()
        self.strategy.close()
        self._done.set()
        self._close_returned()

    def _close_returned(self) -> None:
        while self._returned:
            with contextlib.suppress(IndexError):  # another thread took the last one
                self.close(self._returned.popleft())

    # -- accepting ----------------------------------------------------------------------------

    def _resume_accepting(self) -> None:
        if not self._accepting:
            self._accepting = True
            for sock in self._listeners:
                self._selector.register(sock, selectors.EVENT_READ, None)

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self._listeners:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)

    def accept(self, listener: socket.socket) -> None:
        """Take one connection from `listener` (the loop thread's step when it is readable)."""
        if self.stopping.is_set():
            # The last of max_requests is being answered: the next connection is for another
            # process sharing the socket (a gunicorn worker's successor), so leave it queued.
            self._pause_accepting()
            return
        config, cap = self.config, self.config.max_connections
        if cap is not None and len(self._open) >= cap:
            # gunicorn's worker_connections: the rest wait in the backlog, none refused.
            self._pause_at_cap(cap)
            return
        now = time.monotonic()
        # One connection a wake-up, and none while another process sharing the listener (a
        # gunicorn worker) holds fewer: it is woken by the same connection and takes it. A
        # connection it leaves is taken once DEFER_ACCEPT has passed: left to others once only.
        defer = self.hooks.defer_accept
        if defer is not None:
            if defer(len(self._open)) and not self._deferred:
                self._deferred = True
                self._pause_accepting()
                self._look_again = now + DEFER_ACCEPT
                return
            self._deferred = False
        try:
            sock, address = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # another process took it, or the client gave up while in the backlog
        except OSError as exc:
            # EMFILE and friends: leave the rest in the backlog until descriptors free up,
            # pausing so the still-readable listener does not spin the loop.
            if now - self._accept_error_logged > 1.0:
                self._accept_error_logged = now
                log.error("accept failed: %s", exc)
            if exc.errno in _OUT_OF_DESCRIPTORS:
                time.sleep(0.01)
            return
        prepare_client(sock, config.io_timeout, HOLD)
        peer = (str(address[0]), str(address[1])) if address else ("", "")
        channel = Channel(sock, Connection(self._limits), peer, self._listeners[listener], HOLD)
        self._open.add(channel)
        self._register(channel, now)
        if cap is not None and len(self._open) >= cap:
            self._pause_at_cap(cap)  # at the cap now: not even a look at the next one

    def _pause_at_cap(self, cap: int) -> None:
        self._pause_accepting()
        # A thread closing a connection wakes the loop only if it sees `_accepting` False; one
        # that looked just before the pause did not, so count again now that it is paused.
        if len(self._open) < cap:
            self._resume_accepting()

    # -- idle connections -----------------------------------------------------------------------

    def _register(self, channel: Channel, now: float) -> None:
        config = self.config
        if channel.started is not None:
            channel.deadline = channel.started + config.header_timeout
        else:
            channel.deadline = now + config.keepalive_timeout
        if self.stopping.is_set():
            channel.deadline = min(channel.deadline, self._idle_until)
        try:
            self._selector.register(channel.sock, selectors.EVENT_READ, channel)
        except (OSError, ValueError):
            self.close(channel)
            return
        channel.registered = True
        self._push_deadline(channel)

    def _push_deadline(self, channel: Channel) -> None:
        heap = self._deadlines
        heapq.heappush(heap, (channel.deadline, next(self._sequence), channel))
        # An entry goes stale when its connection leaves the selector or gets a new deadline;
        # it is dropped when its time comes, and keeps the connection (socket, parser state,
        # last request) alive until then: a whole keep-alive timeout after it closed. Once the
        # entries outnumber twice the open connections, drop the stale ones: amortised O(1)
        # a push, and a closed connection is let go within a few hundred accepts.
        if len(heap) > 2 * len(self._open) + _HEAP_SLACK:
            heap[:] = [e for e in heap if e[2].registered and e[2].deadline == e[0]]
            heapq.heapify(heap)

    def _dispatch(self, channel: Channel) -> None:
        self._selector.unregister(channel.sock)
        channel.registered = False
        self.strategy.dispatch(channel)

    def _take_returned(self) -> None:
        self._waker.clear()
        self._wake_pending = False
        returned, now, ending = self._returned, time.monotonic(), self._ending
        while returned:
            channel = returned.popleft()
            if ending:
                self.close(channel)
            else:
                self._register(channel, now)
        self._accept_again()

    def _accept_again(self) -> None:
        """Accept again, unless a stop has begun, at the cap, or leaving connections to others."""
        if self._accepting or self.stopping.is_set() or self._look_again != _NEVER:
            return
        cap = self.config.max_connections
        if cap is None or len(self._open) < cap:
            self._resume_accepting()

    def _expire(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, _, channel = heapq.heappop(heap)
            if not channel.registered or channel.deadline != deadline:
                continue  # handed to the threads or re-registered since: a stale entry
            self._selector.unregister(channel.sock)
            channel.registered = False
            if channel.started is not None:
                if bytes_waiting(channel.sock):
                    # Sent in time, maybe, but unseen: registered after this turn's select (a
                    # thread handed it back late on a loaded machine). A thread reads them, and
                    # answers 408 itself if the head is still incomplete (Responder._late).
                    self.strategy.dispatch(channel)
                    continue
                time_out(channel)
            self.close(channel)

    # -- the threads' side (the `Owner` interface) ---------------------------------------------

    def hand_back(self, channel: Channel) -> None:
        """Take an idle connection back into the selector (any thread)."""
        self._returned.append(channel)
        if self._done.is_set():  # a thread that outlived the loop (stuck past the stop)
            self._close_returned()
        else:
            self._wake_once()

    def close(self, channel: Channel) -> None:
        """Close a connection (any thread)."""
        self._open.discard(channel)
        self.strategy.forget(channel)
        with contextlib.suppress(OSError):
            channel.sock.close()
        if not self._accepting or self._ending:
            self._wake_once()  # the loop may be waiting for a free slot or for the last one

    def _wake_once(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self._waker.wake()
