"""The socket loop: listening, a selector for idle connections, a bounded worker pool.

This module owns the sockets and the threads. One thread (the one calling `serve_forever`)
accepts connections and watches every idle or keep-alive connection with a selector, so an
idle connection costs a file descriptor and a few hundred bytes, never a thread. When a
connection becomes readable it is handed to a worker of a bounded pool, which parses and
answers requests while they are readily available and then hands the connection back.
On Linux the workers multiplex (`_Mux`): a worker parks the connection it answered in an
epoll set the workers share and goes on with whichever parked connection is ready, so that
under load one thread serves many connections instead of all threads trading the GIL; a
connection parked for `_LINGER` goes back to the selector. Elsewhere a worker waits briefly
on its own connection.

Timeouts live here: a header-read timeout (slowloris: a request head must arrive within it,
else 408 and close), an idle keep-alive timeout (close silently), an I/O timeout for bodies
and writes, and a bounded wait for in-flight requests on SIGINT/SIGTERM.

Client sockets are blocking with kernel timeouts (SO_RCVTIMEO/SO_SNDTIMEO) so that the hot
path, "wait briefly for the next request, read it, write the answer", is two system calls.
That, `select.poll` and MSG_DONTWAIT make the server POSIX-only (Linux, macOS, BSD).

HTTP itself is `protocol.py`; PEP 3333 is `wsgi.py`.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import os
import queue
import select
import selectors
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from http import HTTPStatus
from types import FrameType
from typing import Any

from ..logs import configure_logging
from .protocol import NEED_DATA, Connection, Limits, ProtocolError, Request
from .wsgi import SERVER_SOFTWARE, WSGIApp, WSGIBridge, http_date, recv_some, send_all

__all__ = ["BindError", "DevServer", "ServerConfig", "serve"]

log = logging.getLogger("microwsgi.server")

_RECV_SIZE = 65536
_ACCEPT_BATCH = 64
# How long a worker keeps waiting on a connection it just answered before handing it back
# to the selector. A keep-alive client usually sends its next request within a fraction of
# a millisecond; waiting for it in the worker saves two thread hand-offs per request. The
# long wait is only taken while another worker is idle; when none is, the short one bounds
# the delay a newly arrived request can see, and with requests queued there is no wait.
_LINGER = 0.05
_LINGER_BUSY = 0.002
# After an error answer that closes the connection, unread request bytes would make the
# kernel send RST, which can destroy the answer before the client reads it; so the server
# half-closes and discards input for at most this long (and this many bytes) first.
_CLOSE_LINGER = 0.5
_CLOSE_LINGER_BYTES = 1 << 18
# Multiplexing workers (Linux, epoll): a worker that has answered a request parks the
# connection in an epoll set shared by the workers and takes whichever parked connection is
# ready next, so that under load one thread runs request after request instead of every
# thread waking for its own connection and handing the GIL around. At most one worker waits
# in epoll; the others sleep, and one of them ("the deputy") takes over the wait if it has
# been left empty for `_PROMOTE` seconds (the workers are all inside slow requests). A turn
# on one connection is at most `_TURN` requests, so a pipelining client cannot starve others.
_USE_EPOLL = hasattr(select, "epoll")
_PROMOTE = 0.002
_TURN = 16


class BindError(OSError):
    """The listening socket could not be created; `str()` is one line for the user."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ServerConfig:
    """Server options; every one is also a keyword of `serve()` and `DevServer`."""

    threads: int = 8
    max_target: int = 8190
    max_header_bytes: int = 65536
    max_header_count: int = 100
    max_body_size: int | None = None
    header_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    io_timeout: float = 30.0
    shutdown_timeout: float = 10.0
    backlog: int = 1024
    access_log: bool = True

    def limits(self) -> Limits:
        return Limits(
            max_target=self.max_target,
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            max_body_size=self.max_body_size,
        )

    @classmethod
    def from_options(cls, **options: Any) -> ServerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
        config = cls(**options)
        if config.threads < 1:
            raise ValueError("threads must be at least 1")
        return config


def format_address(host: str, port: int) -> str:
    """`host:port`, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening socket on `host:port` (port 0: any free port); raises `BindError`."""
    where = format_address(host or "0.0.0.0", port)
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from None
    # For a name such as 'localhost' prefer IPv4: it is what most clients try first.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and host in ("", "::"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(address)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            error = error or exc
            continue
        return sock
    assert error is not None
    reason = os.strerror(error.errno) if error.errno else str(error)
    reason = reason[:1].lower() + reason[1:]
    raise BindError(error.errno, f"cannot listen on {where}: {reason}")


def _linger_close(sock: socket.socket) -> None:
    """Half-close, then discard what the client is still sending (bounded) before closing.

    Closing with unread input makes the kernel send RST, which can destroy the answer
    before the client has read it.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        end, seen = time.monotonic() + _CLOSE_LINGER, 0
        while seen < _CLOSE_LINGER_BYTES:
            chunk = recv_some(sock, end - time.monotonic())
            if not chunk:
                break
            seen += len(chunk)
    except OSError:  # includes TimeoutError: the client keeps sending; give up
        pass


def _timeval(seconds: float) -> bytes:
    """A `struct timeval` for SO_RCVTIMEO/SO_SNDTIMEO; at least 1 ms (zero means forever)."""
    whole, fraction = divmod(max(seconds, 0.001), 1.0)
    return struct.pack("ll", int(whole), int(fraction * 1e6))


class _Conn:
    """A client connection; owned by the loop thread while idle, by one worker otherwise."""

    __slots__ = (
        "deadline",
        "fd",
        "in_epoll",
        "park_until",
        "peer",
        "proto",
        "receive_timeout",
        "registered",
        "sock",
        "started",
    )

    def __init__(self, sock: socket.socket, proto: Connection, peer: tuple[str, str]) -> None:
        self.sock = sock
        self.proto = proto
        self.peer = peer
        # When the first byte of a still-incomplete request head arrived (header timeout).
        self.started: float | None = None
        self.deadline = 0.0
        self.registered = False
        self.receive_timeout = _LINGER  # the socket's SO_RCVTIMEO
        self.fd = sock.fileno()
        self.in_epoll = False  # registered (armed or not) in the workers' epoll set
        self.park_until = 0.0  # when a parked connection goes back to the loop's selector


class _Pool:
    """A bounded set of worker threads, started lazily, taking jobs from one queue.

    `idle` counts workers waiting for a job that no submitted job has claimed yet: `submit`
    claims one (or starts a thread) before queueing, so a job is never left in the queue
    while a thread could have been started for it. `backlog` counts jobs queued with no
    worker to claim; a worker finishing its job takes one of those before counting as idle.
    """

    def __init__(self, size: int, target: Callable[[_Conn], None]) -> None:
        self.size = size
        self.idle = 0
        self.backlog = 0
        self._target = target
        self._jobs: queue.SimpleQueue[_Conn | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, conn: _Conn) -> None:
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
                self.backlog += 1
        self._jobs.put(conn)

    def _run(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            job = jobs.get()
            if job is None:
                return
            self._target(job)
            with lock:
                if self.backlog:
                    self.backlog -= 1
                else:
                    self.idle += 1

    def stop(self, deadline: float) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Mux:
    """Multiplexing workers: a bounded set of threads sharing one epoll set (Linux).

    A connection is owned by exactly one of: the loop's selector, `parked` (armed in the
    epoll set with EPOLLONESHOT), `ready` (readable data already buffered), or one worker.
    Whoever pops it from `parked` (under the lock) owns it; an event for a connection no
    longer parked is stale and ignored. `polling` says a worker waits in epoll; `busy` counts
    workers serving a connection; `reserve` counts workers asleep on the condition.
    """

    _MASK = (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT) if _USE_EPOLL else 0

    def __init__(self, size: int, server: DevServer) -> None:
        self.size = size
        self._server = server
        self._stopping = server._stopping
        self.epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self.parked: dict[int, _Conn] = {}
        self.ready: deque[_Conn] = deque()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # sleeping workers
        self._deputy_cond = threading.Condition(lock)  # the deputy, while asleep
        self._threads: list[threading.Thread] = []
        self.polling = False
        self.vacated = 0.0  # when a worker last left the wait in epoll, or looked for work
        self.busy = 0
        self.reserve = 0
        self._deputy = False
        self._deputy_asleep = False
        self._sweep_at = 0.0
        self._poll_forever = False  # the poller waits without a timeout (nothing parked)

    def _start_thread(self) -> None:  # under the lock
        self.busy += 1  # a new thread counts as busy until it waits
        thread = threading.Thread(
            target=self._server._mux_run, name=f"microwsgi-worker-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def park(self, conn: _Conn, until: float, *, wake: bool) -> None:
        """Watch `conn` in the epoll set until `until`, then give it back to the loop."""
        conn.park_until = until
        fd = conn.fd
        with self._cond:
            self.parked[fd] = conn
            if self._poll_forever:  # the poller must now wake to sweep
                self._poll_forever = False
                with contextlib.suppress(OSError):
                    self._wake_w.send(b"\0")
            if wake and not self.polling:
                if self._deputy_asleep:
                    self._deputy_cond.notify()
                elif not self.reserve and len(self._threads) < self.size:
                    self._start_thread()
        try:
            if conn.in_epoll:
                self.epoll.modify(fd, self._MASK)
            else:
                try:
                    self.epoll.register(fd, self._MASK)
                except FileExistsError:  # left by a closed socket whose file was shared
                    self.epoll.modify(fd, self._MASK)
                conn.in_epoll = True
        except OSError:
            with self._cond:
                if self.parked.pop(fd, None) is None:
                    return  # taken already (cannot happen unarmed, but be safe)
            self._server._close(conn)

    def push_ready(self, conn: _Conn) -> None:
        with self._cond:
            self.ready.append(conn)

    def _claim(self, events: list[tuple[int, int]]) -> _Conn | None:
        for fd, _ in events:
            with self._cond:
                conn = self.parked.pop(fd, None)
            if conn is not None:
                return conn
        return None

    def sweep(self, now: float, everything: bool = False) -> None:
        """Give connections parked past their time back to the loop's selector."""
        self._sweep_at = now + _LINGER / 2
        with self._cond:
            gone = [c for c in self.parked.values() if everything or c.park_until <= now]
            for conn in gone:
                del self.parked[conn.fd]
            if everything:
                gone.extend(self.ready)
                self.ready.clear()
        for conn in gone:
            if conn.in_epoll:
                with contextlib.suppress(OSError, ValueError):
                    self.epoll.unregister(conn.fd)
                conn.in_epoll = False
            self._server._hand_back(conn)

    def take(self) -> _Conn | None:
        """A connection ready to serve now, without waiting (the calling worker is busy)."""
        self.vacated = now = time.monotonic()
        if now >= self._sweep_at:
            self.sweep(now)
        try:
            conn = self._claim(self.epoll.poll(0, 1))
        except OSError:
            return None
        if self.ready:
            with self._cond:
                if self.ready:
                    if conn is not None:
                        self.ready.append(conn)
                    return self.ready.popleft()
        return conn

    def _vacant(self) -> bool:
        """Nobody waits in epoll (a method, so that type narrowing does not stick)."""
        return not self.polling

    def wait(self, *, retire: bool = False) -> _Conn | None:
        """Block until there is a connection to serve; None when the server stops.

        `retire`: other workers are busy and will look for work when done, so sleep even if
        nobody waits in epoll (the deputy takes that wait if they stay busy too long).
        """
        cond, stopping = self._cond, self._stopping
        with cond:
            self.busy -= 1
            while True:
                if stopping.is_set():
                    break
                if self.ready:
                    self.busy += 1
                    return self.ready.popleft()
                if not self.polling and not retire:
                    self.polling = True
                    break
                retire = False
                self.reserve += 1
                if self._deputy:
                    cond.wait()
                    self.reserve -= 1
                    continue
                self._deputy = True
                while not stopping.is_set():
                    if self._vacant():
                        left = self.vacated + _PROMOTE - time.monotonic()
                        if left <= 0:
                            break  # the wait in epoll was left empty too long: take it
                        cond.wait(left)
                    elif self.busy:
                        cond.wait(_PROMOTE)
                    else:
                        self._deputy_asleep = True
                        self._deputy_cond.wait()
                        self._deputy_asleep = False
                self._deputy = False
                self.reserve -= 1
                if self.reserve:
                    cond.notify()  # another sleeper becomes the deputy
        if stopping.is_set():
            self.sweep(time.monotonic(), everything=True)
            return None
        return self._poll()

    def _poll(self) -> _Conn | None:
        """Wait in epoll (this worker holds `polling`) for a ready connection."""
        epoll, cond, stopping = self.epoll, self._cond, self._stopping
        wake_fd = self._wake_r.fileno()
        while True:
            with cond:
                forever = self._poll_forever = not self.parked
            try:
                events = epoll.poll(-1 if forever else _LINGER / 2, 1)
            except OSError:
                events = []
            if events and events[0][0] == wake_fd:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
                events = []
            conn = self._claim(events)
            now = time.monotonic()
            if now >= self._sweep_at:
                self.sweep(now)
            with cond:
                self._poll_forever = False
                if conn is None and not self.ready and not stopping.is_set():
                    continue
                self.polling = False
                self.vacated = now
                if stopping.is_set():
                    if conn is not None:
                        self.ready.append(conn)
                    break
                self.busy += 1
                if self.ready:
                    if conn is not None:
                        self.ready.append(conn)
                    conn = self.ready.popleft()
                if self._deputy_asleep:
                    self._deputy_cond.notify()
                elif not self.reserve and len(self._threads) < self.size:
                    self._start_thread()
                return conn
        self.sweep(now, everything=True)
        return None

    def stop(self, deadline: float) -> None:
        self.wake()
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        with self._cond:
            self._cond.notify_all()
            self._deputy_cond.notify_all()

    def close(self) -> None:
        self.epoll.close()
        self._wake_r.close()
        self._wake_w.close()


class DevServer:
    """The development server. Binds in the constructor, so `port` is known at once.

    >>> server = DevServer(app, "127.0.0.1", 0).start()   # background thread
    >>> server.port
    >>> server.shutdown()

    `serve_forever()` runs the loop in the calling thread; with `handle_signals=True` (main
    thread only) SIGINT and SIGTERM stop it gracefully.
    """

    def __init__(
        self,
        app: WSGIApp,
        host: str = "localhost",
        port: int = 9090,
        *,
        sock: socket.socket | None = None,
        **options: Any,
    ) -> None:
        self.config = config = ServerConfig.from_options(**options)
        self.host = host
        self._listener = sock if sock is not None else bind(host, port, config.backlog)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._limits = config.limits()
        self._stopping = threading.Event()
        self._bridge = WSGIBridge(
            app,
            host or "0.0.0.0",
            self.port,
            access_log=config.access_log,
            io_timeout=config.io_timeout,
            stopping=self._stopping,
        )
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self._returned: deque[_Conn] = deque()
        self._deadlines: list[tuple[float, int, _Conn]] = []
        self._sequence = itertools.count()
        self._open: set[_Conn] = set()
        self._pool = _Pool(config.threads, self._work)
        self._mux = _Mux(config.threads, self) if _USE_EPOLL else None
        self._running = False
        self._accept_error_logged = 0.0
        self._force = threading.Event()  # a second signal: stop waiting for in-flight requests
        self._done = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        return f"http://{format_address(self.host or '0.0.0.0', self.port)}"

    # -- running and stopping ---------------------------------------------------------------

    def start(self) -> DevServer:
        """Serve from a background thread (tests, embedding); returns self."""
        self._running = True
        threading.Thread(target=self.serve_forever, name="microwsgi-loop", daemon=True).start()
        return self

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop gracefully and wait (bounded) for the loop to finish; idempotent."""
        self.stop()
        if not self._running:
            self._release()  # never served: only the sockets to close
        else:
            self._done.wait(self.config.shutdown_timeout + 5 if timeout is None else timeout)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def stop(self) -> None:
        """Ask the loop to stop gracefully; returns at once (safe from any thread)."""
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full wake buffer already means "wake up"
            self._wake_w.send(b"\0")

    def serve_forever(self, *, handle_signals: bool = False) -> None:
        """Run until `shutdown()` (or SIGINT/SIGTERM with `handle_signals`)."""
        self._running = True
        with self._signals(handle_signals):
            sel = self._selector
            sel.register(self._listener, selectors.EVENT_READ, None)
            sel.register(self._wake_r, selectors.EVENT_READ, self)
            try:
                while not self._stopping.is_set():
                    for key, _ in sel.select(self._select_timeout()):
                        if key.data is None:
                            self._accept()
                        elif key.data is self:
                            self._take_returned()
                        else:
                            self._dispatch(key.data)
                    self._expire(time.monotonic())
            finally:
                self._close_down()

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = 0

        def handler(signum: int, frame: FrameType | None) -> None:
            nonlocal stops
            stops += 1
            if stops > 1:  # a second Ctrl+C: stop waiting for in-flight requests
                self._force.set()
            log.info("%s: shutting down", signal.Signals(signum).name)
            self.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _close_down(self) -> None:
        """Stop accepting, close idle connections, wait (bounded) for in-flight ones."""
        sel = self._selector
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(self._listener)
        self._listener.close()  # stop accepting at once; the backlog is refused
        for key in list(sel.get_map().values()):
            if isinstance(key.data, _Conn):
                sel.unregister(key.fileobj)
                key.data.registered = False
                self._close(key.data)
        if self._mux is not None:
            self._mux.wake()  # parked connections go back to be closed
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self._open and time.monotonic() < deadline and not self._force.is_set():
            sel.select(0.05)
            self._take_returned()
        if self._open:
            log.warning("%d connection(s) still busy at shutdown", len(self._open))
        if self._mux is not None:
            self._mux.stop(min(deadline, time.monotonic() + 1.0))
        self._pool.stop(min(deadline, time.monotonic() + 1.0))
        self._release()

    def _release(self) -> None:
        self._listener.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._mux is not None:
            self._mux.close()
        self._done.set()

    # -- the loop thread ----------------------------------------------------------------------

    def _select_timeout(self) -> float | None:
        if not self._deadlines:
            return None
        return max(0.0, self._deadlines[0][0] - time.monotonic())

    def _accept(self) -> None:
        now = time.monotonic()
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue  # the client gave up while in the backlog
            except OSError as exc:
                # EMFILE and friends: leave the rest in the backlog until descriptors free up,
                # pausing so the still-readable listener does not spin the loop.
                if now - self._accept_error_logged > 1.0:
                    self._accept_error_logged = now
                    log.error("accept failed: %s", exc)
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.01)
                return
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # Answers are written in one send; waiting for an ACK (Nagle) only adds latency.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Blocking, with kernel timeouts: a read or a write is then one system call
            # (Python's own timeouts poll() before each one), still never unbounded.
            sock.setblocking(True)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self.config.io_timeout))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(_LINGER))
            conn = _Conn(sock, Connection(self._limits), (str(address[0]), str(address[1])))
            self._open.add(conn)
            self._register(conn, now)

    def _register(self, conn: _Conn, now: float) -> None:
        config = self.config
        if conn.started is not None:
            conn.deadline = conn.started + config.header_timeout
        else:
            conn.deadline = now + config.keepalive_timeout
        try:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            self._close(conn)
            return
        conn.registered = True
        heapq.heappush(self._deadlines, (conn.deadline, next(self._sequence), conn))

    def _dispatch(self, conn: _Conn) -> None:
        self._selector.unregister(conn.sock)
        conn.registered = False
        if self._mux is not None:
            self._park(conn, wake=True)
        else:
            self._pool.submit(conn)

    def _take_returned(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        self._wake_pending = False
        returned, now, stopping = self._returned, time.monotonic(), self._stopping.is_set()
        while returned:
            conn = returned.popleft()
            if stopping:
                self._close(conn)
            else:
                self._register(conn, now)

    def _expire(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, _, conn = heapq.heappop(heap)
            if not conn.registered or conn.deadline != deadline:
                continue  # handed to a worker or re-registered since: a stale entry
            self._selector.unregister(conn.sock)
            conn.registered = False
            if conn.started is not None:
                # RFC 9110 §15.5.9: the request head did not arrive in time.
                log.info("%s: request head timed out", conn.peer[0])
                self._send_error(conn, 408, "request head not received in time", block=False)
            self._close(conn)

    # -- the workers ----------------------------------------------------------------------------

    def _hand_back(self, conn: _Conn) -> None:
        """Return an idle connection to the loop thread's selector."""
        self._returned.append(conn)
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def _work(self, conn: _Conn) -> None:
        try:
            if self._serve(conn):
                self._hand_back(conn)
            else:
                self._close(conn)
        except BaseException:
            log.exception("unexpected error serving %s", conn.peer[0])
            self._close(conn)

    def _park(self, conn: _Conn, *, wake: bool) -> None:
        assert self._mux is not None
        until = time.monotonic() + _LINGER
        if conn.started is not None:
            until = min(until, conn.started + self.config.header_timeout)
        self._mux.park(conn, until, wake=wake)

    def _mux_run(self) -> None:
        """A multiplexing worker: serve whichever parked connection is ready."""
        mux = self._mux
        assert mux is not None
        stopping = self._stopping
        conn = mux.wait()
        while conn is not None:
            try:
                state = self._serve_turn(conn)
            except BaseException:
                log.exception("unexpected error serving %s", conn.peer[0])
                state = 0
            if state == 0:
                self._close(conn)
            elif stopping.is_set():
                self._hand_back(conn)
            elif state == 2:
                mux.push_ready(conn)
            else:
                self._park(conn, wake=False)
            # While another worker is busy too, leave the work to it: fewer threads taking
            # turns means fewer hand-offs of the GIL.
            retire = mux.busy > 1
            conn = None if retire else mux.take()
            if conn is None:
                conn = mux.wait(retire=retire)

    def _serve_turn(self, conn: _Conn) -> int:
        """Answer the requests `conn` has sent, at most `_TURN` of them.

        0: close the connection; 1: park it (wait for more); 2: more is already buffered.
        """
        try:
            self._receive(conn, 0)
        except OSError:
            return 0
        served = 0
        while True:
            event = self._next_event(conn)
            if event is None:
                return 0
            if type(event) is Request:
                if not self._answer(conn, event):
                    return 0
                served += 1
                if served >= _TURN:
                    # A pipelined request already begun is not reported by epoll again.
                    return 2 if conn.started is not None else 1
            elif event is NEED_DATA:
                if self._stopping.is_set():
                    return 0
                started = conn.started
                if started is not None and (
                    time.monotonic() >= started + self.config.header_timeout
                ):  # trickled bytes do not extend the header timeout
                    log.info("%s: request head timed out", conn.peer[0])
                    self._send_error(conn, 408, "request head not received in time", block=False)
                    return 0
                return 1
            else:  # ConnectionClosed: the peer is done with us
                return 0

    def _receive(self, conn: _Conn, timeout: float) -> bool:
        """Read what the peer sent into the protocol; False if nothing came in `timeout`."""
        sock = conn.sock
        flags: int = socket.MSG_DONTWAIT
        if timeout > 0:
            flags = 0
            if conn.receive_timeout != timeout:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
                conn.receive_timeout = timeout
        try:
            data = sock.recv(_RECV_SIZE, flags)
        except BlockingIOError:
            return False
        if data and conn.started is None:
            conn.started = time.monotonic()
        conn.proto.receive_data(data)
        return True

    def _serve(self, conn: _Conn) -> bool:
        """Answer requests while they are readily available; True to keep the connection."""
        stopping = self._stopping
        try:
            self._receive(conn, 0)
        except OSError:
            return False
        while True:
            event = self._next_event(conn)
            if event is None:
                return False
            if type(event) is Request:
                if not self._answer(conn, event):
                    return False
            elif event is NEED_DATA:
                if stopping.is_set():
                    return False
                wait = self._linger_time(conn)
                try:
                    if wait <= 0 or not self._receive(conn, wait):
                        return True
                except OSError:
                    return False
            else:  # ConnectionClosed: the peer is done with us
                return False

    def _next_event(self, conn: _Conn) -> Any:
        """The protocol's next event, or None after answering a protocol error."""
        try:
            return conn.proto.next_event()
        except ProtocolError as exc:
            self._reject(conn, exc)
            return None

    def _answer(self, conn: _Conn, request: Request) -> bool:
        """Run the app for one request; False when the connection must close."""
        proto = conn.proto
        conn.started = None
        if not self._bridge.handle(conn.sock, proto, request, conn.peer):
            if not proto.request_complete and not proto.peer_closed:
                _linger_close(conn.sock)
            return False
        if proto.trailing_data:  # the next, pipelined request has begun
            conn.started = time.monotonic()
        proto.start_next_cycle()
        return True

    def _linger_time(self, conn: _Conn) -> float:
        pool = self._pool
        linger = _LINGER if pool.idle else 0.0 if pool.backlog else _LINGER_BUSY
        if conn.started is not None:
            return min(linger, conn.started + self.config.header_timeout - time.monotonic())
        return linger

    def _reject(self, conn: _Conn, error: ProtocolError) -> None:
        """Answer a request the protocol refused, then close."""
        if conn.proto.peer_closed and error.status == 400:
            return  # the client hung up mid-request: nobody is listening
        log.info("%s: %d %s", conn.peer[0], error.status, error.message)
        self._send_error(conn, error.status, error.message, block=True)

    def _send_error(self, conn: _Conn, status: int, message: str, *, block: bool) -> None:
        body = f"{message}\n".encode()
        proto = conn.proto
        try:
            reason = HTTPStatus(status).phrase
            headers = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Date", http_date()),
                ("Server", SERVER_SOFTWARE),
            ]
            data = proto.send_response(status, reason, headers) + proto.send_data(body)
            data += proto.send_end()
        except (RuntimeError, ValueError):
            return  # a response had already started: closing is all that is left
        sock = conn.sock
        try:
            if not block:
                sock.send(data, socket.MSG_DONTWAIT)
                return
            send_all(sock, data)
        except OSError:
            return
        _linger_close(sock)

    def _close(self, conn: _Conn) -> None:
        self._open.discard(conn)
        if conn.in_epoll and self._mux is not None:
            # Closing does not always end the registration: the file may be shared with
            # a forked child for a moment.
            conn.in_epoll = False
            with contextlib.suppress(OSError, ValueError):
                self._mux.epoll.unregister(conn.fd)
        with contextlib.suppress(OSError):
            conn.sock.close()


def serve(
    app: WSGIApp,
    host: str = "localhost",
    port: int = 9090,
    *,
    listen_msg: bool = False,
    ready: Callable[[tuple[str, int]], object] | threading.Event | None = None,
    sock: socket.socket | None = None,
    **options: Any,
) -> None:
    """Serve the WSGI callable `app` on `host:port` until SIGINT/SIGTERM, then return.

    Options (see `ServerConfig`): threads=8, max_target, max_header_bytes=65536,
    max_header_count=100, max_body_size=None, header_timeout=10.0, keepalive_timeout=5.0,
    io_timeout=30.0, shutdown_timeout=10.0, backlog, access_log=True.

    `port=0` picks a free port. `listen_msg=True` prints `Server listening on http://HOST:PORT`
    with the real port. `ready` is called with (host, port) (or `set()` if it is an Event)
    once the socket listens. A port that cannot be bound raises `BindError` (an `OSError`
    whose message is one line such as `cannot listen on 127.0.0.1:8080: address already in
    use`). Signals are handled only when called from the main thread.
    """
    server = DevServer(app, host, port, sock=sock, **options)
    configure_logging()
    if listen_msg:
        print(f"Server listening on {server.url}", flush=True)
    if isinstance(ready, threading.Event):
        ready.set()
    elif ready is not None:
        ready(server.address)
    server.serve_forever(handle_signals=True)
