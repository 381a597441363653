"""Serving a connection for a while: the turn that both thread strategies run.

This module owns what a thread does with a connection it has been given (a turn): read what
the client sent, answer each complete request through the WSGI bridge, answer a protocol
error or a head that took too long (408) and close, and decide what happens next, as a `Turn`:
close the connection, watch it for the next request, or serve it again soon because more
requests are already buffered (a turn is at most `TURN_LIMIT` requests, so one pipelining
client cannot starve the others). Which thread runs it, and where an idle connection waits,
is the thread strategy's: ``mux.py`` (Linux, epoll) or ``pool.py`` (portable); the interface
between the strategies and the engine (`ThreadStrategy`, `Owner`) is declared here.
"""

from __future__ import annotations

import enum
import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import Final, Protocol

from .answers import error_answer
from .channel import Channel
from .config import ServerConfig
from .protocol.events import NEED_DATA, ProtocolError, RequestHead
from .sockets import RECV_SIZE, lingering_close, receive, send_all, set_receive_timeout
from .wsgi import WSGIBridge

log = logging.getLogger("microwsgi.server")

# Requests one connection may have answered in a row while others may be waiting.
TURN_LIMIT: Final = 16
# How long an answered connection is held for its next request before it goes back to the
# loop's selector. A keep-alive client usually sends its next request within a fraction of a
# millisecond; catching it here saves two thread hand-offs per request.
HOLD: Final = 0.05


class Turn(enum.Enum):
    """How a turn on a connection ended."""

    CLOSE = "close"  # the connection is finished (or broken): close it
    IDLE = "idle"  # nothing buffered: watch the socket for the client's next bytes
    READY = "ready"  # TURN_LIMIT reached with the next request already buffered


# PERF: the turns under module names, as the strategies compare them: in Python 3.11 looking a
# member up on its Enum class goes through the metaclass's __getattr__ hook.
CLOSE: Final = Turn.CLOSE
IDLE: Final = Turn.IDLE
READY: Final = Turn.READY


class Owner(Protocol):
    """What a thread strategy needs from the engine that owns the connections."""

    def hand_back(self, channel: Channel) -> None:
        """Take an idle connection back into the loop thread's selector."""

    def close(self, channel: Channel) -> None:
        """Close a connection (from any thread)."""


class ThreadStrategy(Protocol):
    """What the engine needs from a thread strategy (``mux.py``, ``pool.py``)."""

    def dispatch(self, channel: Channel) -> None:
        """Serve `channel`, which has bytes to read (loop thread)."""

    def forget(self, channel: Channel) -> None:
        """`channel` is being closed: drop whatever the strategy holds for it."""

    def begin_stop(self) -> None:
        """The engine's loop has closed down (it waits only for the connections in flight): give
        waiting connections back, and let the threads end once their connection is done."""

    def stop(self, deadline: float) -> None:
        """Wait until `deadline` at most for the threads to end."""

    def close(self) -> None:
        """Release what the strategy holds (after `stop`)."""

    def busy_since(self, moment: float) -> int:
        """How many threads are in a turn that began before `moment` (`time.monotonic()`;
        any thread may ask: a count taken on the fly)."""


class Responder:
    """Answers the requests of the connections it is given, a turn at a time; one per engine,
    shared by its threads."""

    def __init__(
        self, bridge: WSGIBridge, config: ServerConfig, on_last_request: Callable[[], object]
    ) -> None:
        self._bridge = bridge
        self._header_timeout = config.header_timeout
        self._max_requests = config.max_requests
        self._numbers = itertools.count(1)  # next() is atomic: no lock for the count
        self._on_last_request = on_last_request

    def serve(
        self,
        channel: Channel,
        began: float,
        buffer: memoryview,
        hold: Callable[[], float] | None = None,
    ) -> Turn:
        """Answer what `channel` has sent, at most TURN_LIMIT requests.

        `began`: when the turn began (the strategy's clock reading), when what the socket
        holds now counts as arrived. `buffer`: the calling thread's read buffer
        (`sockets.read_buffer()`; PERF: looked up once a thread, not once a turn). `hold()`
        says how long to wait on this connection for its next request before giving it up
        (None: never wait, the strategy watches idle connections itself; a strategy whose
        engine has closed down says 0).
        """
        try:
            http = channel.http
            try:
                data = buffer[: channel.sock.recv_into(buffer, RECV_SIZE, socket.MSG_DONTWAIT)]
            except BlockingIOError:
                pass  # nothing after all (a stale wake-up): the protocol asks for more
            except OSError:
                return CLOSE
            else:
                if data and channel.started is None:
                    channel.started = began  # PERF: the turn's clock reading, not another
                http.receive_data(data)
            served = 0
            while True:
                try:
                    event = http.next_event()
                except ProtocolError as exc:
                    self._refuse_request(channel, exc)
                    return CLOSE
                if type(event) is RequestHead:
                    if not self._answer(channel, event):
                        return CLOSE
                    served += 1
                    if served >= TURN_LIMIT:
                        # A pipelined request already begun is not reported by the socket again.
                        return READY if channel.started is not None else IDLE
                elif event is NEED_DATA:
                    if hold is None and channel.started is None:
                        return IDLE  # PERF: the usual end of a turn, with no call to `_more`
                    turn = self._more(channel, hold)
                    if turn is not None:
                        return turn
                else:  # ConnectionClosed: the peer is done with us
                    return CLOSE
        except BaseException:  # a bug here must not take the thread with it
            log.exception("unexpected error serving %s", channel.peer[0])
            return CLOSE

    def _more(self, channel: Channel, hold: Callable[[], float] | None) -> Turn | None:
        """Wait for more of what `channel` sends, as long as `hold()` says (None: not at all)
        and the header timeout allows: None once some came, else how the turn ends."""
        wait = hold() if hold is not None else 0.0
        started = channel.started
        if started is not None:
            # Trickled bytes do not extend the header timeout (slowloris).
            left = started + self._header_timeout - time.monotonic()
            if left <= 0:
                return self._late(channel)
            wait = min(wait, left)
        try:
            if wait <= 0 or not self._receive(channel, wait):
                return IDLE
        except OSError:
            return CLOSE
        return None

    def _late(self, channel: Channel) -> Turn | None:
        """The head's time is up; None if the socket still held bytes, now fed to the protocol.

        Bytes that came in time while this thread could not run (a loaded machine) are read
        before the head is judged late: only a head still incomplete is answered 408. Only
        what is already there is read, and a head past its size limit is refused (431), so a
        client cannot stretch the timeout with it.
        """
        try:
            if self._receive(channel, 0):
                return None
        except OSError:
            return CLOSE
        time_out(channel)
        return CLOSE

    def _receive(self, channel: Channel, timeout: float) -> bool:
        """Feed what the peer sent to the protocol; False if nothing came within `timeout`."""
        sock = channel.sock
        flags: int = socket.MSG_DONTWAIT
        if timeout > 0:
            flags = 0
            if channel.receive_timeout != timeout:
                set_receive_timeout(sock, timeout)
                channel.receive_timeout = timeout
        try:
            data = receive(sock, flags)
        except BlockingIOError:
            return False
        if data and channel.started is None:
            channel.started = time.monotonic()
        channel.http.receive_data(data)
        return True

    def _answer(self, channel: Channel, head: RequestHead) -> bool:
        """Run the app for one request; False when the connection must close."""
        http = channel.http
        channel.started = None
        limit = self._max_requests
        if limit is not None:
            number = next(self._numbers)
            if number >= limit:
                # Before answering, so that this answer says "close". Every request from the
                # limit on does it, not only the one numbered so: another thread may take the
                # next number before that one has stopped the engine (it may even be writing
                # the line below), and its answers must not keep their connection open.
                self._on_last_request()
                if number == limit:
                    log.info("served %d requests: stopping after the ones in flight", limit)
        if not self._bridge.handle(channel.sock, http, head, channel.peer, channel.base_environ):
            if not http.request_complete and not http.peer_closed:
                lingering_close(channel.sock)
            return False
        if http.pipelined:  # the next request has begun: its header timeout runs
            channel.started = time.monotonic()
        http.start_next_cycle()
        return True

    def _refuse_request(self, channel: Channel, error: ProtocolError) -> None:
        if channel.http.peer_closed and error.status == 400:
            return  # the client hung up mid-request: nobody is listening
        log.info("%s: %d %s", channel.peer[0], error.status, error.message)
        refuse(channel, error.status, error.message, block=True)


def time_out(channel: Channel) -> None:
    """Answer a request head that did not arrive in time (RFC 9110 §15.5.9): 408, then close."""
    log.info("%s: request head timed out", channel.peer[0])
    refuse(channel, 408, "request head not received in time", block=False)


def refuse(channel: Channel, status: int, message: str, *, block: bool) -> None:
    """Send a plain-text error answer; `block=False` (the loop thread) never waits on the client.

    The caller closes the connection afterwards.
    """
    # Only ever between responses (a refused head, a head too slow), so none has started.
    head, body = error_answer(channel.http, status, message)
    sock = channel.sock
    try:
        if not block:
            sock.send(head + body, socket.MSG_DONTWAIT)
            return
        send_all(sock, head + body)
    except OSError:
        return
    lingering_close(sock)
