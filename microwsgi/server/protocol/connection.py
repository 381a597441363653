"""`Connection`: one server-side HTTP/1.1 connection as a sans-IO state machine.

This module owns the order of things on a connection: a request head, its body, then the
response (status line and fields, body framed by Content-Length, chunked coding or close),
then either the next cycle or the end. It decides whether the connection can carry another
request (RFC 9112 §9.3) and how a response's body is framed. It never touches a socket, a
clock or a thread: the threads feed it bytes and write what it returns, and the WSGI bridge
turns its events into an environ. Reading a head is ``head.py``, reading a body ``body.py``,
writing a response head (and refusing what would split or corrupt it) ``response.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ..._http import reason_phrase
from .body import ChunkedReader, LengthReader
from .events import (
    DEFAULT_LIMITS,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    EndOfMessage,
    ProtocolError,
    Sentinel,
)
from .fields import build_request_head
from .head import HeadReader
from .response import head_lines

if TYPE_CHECKING:
    from .events import Data, Event, Limits, RequestHead


# Where the request side of a cycle is.
_IN_HEAD: Final = Sentinel("in: head")
_IN_BODY: Final = Sentinel("in: body")
_IN_DONE: Final = Sentinel("in: done")  # request complete; the next waits for start_next_cycle()
_IN_CLOSED: Final = Sentinel("in: closed")
# Where the response side is, and how its body is framed.
_OUT_IDLE: Final = Sentinel("out: idle")
_OUT_NO_BODY: Final = Sentinel("out: no body")  # HEAD, 204, 304
_OUT_LENGTH: Final = Sentinel("out: Content-Length")
_OUT_CHUNKED: Final = Sentinel("out: chunked")
_OUT_UNTIL_CLOSE: Final = Sentinel("out: until close")  # RFC 9112 §6.3 item 8: ends when we close
_OUT_DONE: Final = Sentinel("out: done")


class Connection:
    """One server-side HTTP/1.1 connection, one request/response cycle at a time.

    `keep_alive` says whether the connection can carry another request after the current
    cycle, `request_complete` whether the current request has been received whole (its body
    included). Both are for reading only. PERF: plain attributes, kept by each change of
    state, since they are read several times a request.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._eof = False
        self._error: ProtocolError | None = None
        self.keep_alive = True
        self._head = HeadReader(limits)  # PERF: one reader per connection, reset each cycle
        self._read_body: Callable[[bytearray], Data | EndOfMessage | Sentinel]
        self._out_remaining = 0  # bytes of a Content-Length body still to send
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._in = _IN_HEAD
        self.request_complete = False
        self._out = _OUT_IDLE
        self._request: RequestHead | None = None
        self._end_pending = False  # a bodyless request's EndOfMessage, not yet returned

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes | memoryview) -> None:
        """Feed bytes read from the peer (copied); ``b''`` means the peer closed its side."""
        if self._eof and data:
            raise RuntimeError("received data after EOF")
        if data:
            if self._error is None:  # after an error nothing more is parsed, so nothing kept
                self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``; raises ``ProtocolError``."""
        if self._error is not None:
            raise ProtocolError(self._error.status, self._error.message)
        try:
            state = self._in
            if state is _IN_HEAD:
                # PERF: between requests the buffer is empty: no head reader to ask.
                event: Event | Sentinel = self._read_head() if self._buf else NEED_DATA
            elif state is _IN_BODY:
                event = self._read_body(self._buf)
                if type(event) is EndOfMessage:
                    self._in = _IN_DONE
                    self.request_complete = True
            elif state is _IN_DONE:
                if self._end_pending:
                    self._end_pending = False
                    return EndOfMessage()
                return PAUSED
            else:
                return ConnectionClosed()
        except ProtocolError as exc:
            self._error = exc
            self.keep_alive = False
            raise
        if event is NEED_DATA and self._eof:
            return self._at_eof()
        return event

    def _read_head(self) -> RequestHead | Sentinel:
        head = self._head
        if not head.read(self._buf):
            return NEED_DATA
        assert head.request_line is not None
        request = build_request_head(head.request_line, head.target_parts, head.fields, self.limits)
        self._request = request
        if not request.keep_alive:
            self.keep_alive = False
        if request.chunked:
            self._in = _IN_BODY
            self._read_body = ChunkedReader(self.limits).read
        elif request.content_length:
            self._in = _IN_BODY
            self._read_body = LengthReader(request.content_length).read
        else:
            # PERF: most requests have no body: complete at once, with no reader to build and
            # nothing to drain; its EndOfMessage is still the next event.
            self._in = _IN_DONE
            self.request_complete = True
            self._end_pending = True
        return request

    def _at_eof(self) -> ConnectionClosed:
        if self._in is _IN_HEAD and not self._buf and not self._head.started:
            self._in = _IN_CLOSED
            return ConnectionClosed()
        self._error = ProtocolError(400, "connection closed mid-request")
        self.keep_alive = False
        raise ProtocolError(400, "connection closed mid-request")

    @property
    def response_complete(self) -> bool:
        return self._out is _OUT_DONE

    @property
    def peer_closed(self) -> bool:
        """The peer has sent EOF (buffered pipelined requests may still be answered)."""
        return self._eof

    @property
    def pipelined(self) -> bool:
        """Bytes of a next request are already buffered behind the complete current one."""
        return self._in is _IN_DONE and bool(self._buf)

    def start_next_cycle(self) -> None:
        if self._in is not _IN_DONE or self._out is not _OUT_DONE or not self.keep_alive:
            raise RuntimeError(
                "cannot start a new cycle: request or response unfinished, or closing"
            )
        self._reset_cycle()
        self._head.reset()

    # -- sending -------------------------------------------------------------------------

    def send_informational(self, status: int = 100) -> bytes:
        """An interim response; ``b''`` to HTTP/1.0 clients, who never get one (RFC 9110 §15.2)."""
        if not 100 <= status < 200 or status == 101:
            raise ValueError(f"{status} is not an informational status we can send")
        if self._out is not _OUT_IDLE:
            raise RuntimeError("informational response after the final response started")
        if self._request is None or self._request.http_version == "1.0":
            return b""
        return f"HTTP/1.1 {status} {reason_phrase(status)}\r\n\r\n".encode("latin-1")

    def send_response(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        *,
        head: bool = False,
        close: bool = False,
        length: int | None = None,
        date: str | None = None,
        server: str | None = None,
        body: bytes | None = None,
    ) -> bytes:
        """The status line and header section; chooses the body framing and keep-alive.

        `head`: the response carries no body (as one to HEAD). `close`: the connection ends
        after this response. `length`: the size of the whole body when it is known, sent as
        Content-Length unless `headers` has one or the response has no body (a 0 in answer
        to HEAD is not sent either: the length of the body a GET would get is unknown).
        `date` and `server` are sent as Date and Server unless `headers` has them. `body`:
        the whole body (its size is the `length`), framed and ended after the head.
        """
        if self._out is not _OUT_IDLE:
            raise RuntimeError("response already started")
        lines, declared, asked_close = head_lines(status, reason, headers, date, server)
        if body is not None:
            length = len(body)
        lines.append(self._choose_framing(status, declared, length, head, close or asked_close))
        if body is None:
            return b"".join(lines)
        if self._out is _OUT_LENGTH and self._out_remaining == len(body):
            self._out = _OUT_DONE  # PERF: the usual whole answer, joined to its head in one go
            self._out_remaining = 0
            lines.append(body)
            return b"".join(lines)
        return b"".join(lines) + self.send_data(body) + self.send_end()

    def _choose_framing(
        self, status: int, declared: int | None, length: int | None, head: bool, close: bool
    ) -> bytes:
        request = self._request
        if close or self._error is not None or request is None:
            self.keep_alive = False
        if request is not None and request.method == "HEAD":
            head = True
        extra = b""
        if head or status == 204 or status == 304:
            # RFC 9110 §6.4.1: no content; a Content-Length here describes the GET response.
            self._out = _OUT_NO_BODY
            if declared is None and length and status != 204 and status != 304:
                extra = b"Content-Length: %d\r\n" % length
        elif declared is not None:
            self._out = _OUT_LENGTH
            self._out_remaining = declared
        elif length is not None:
            self._out = _OUT_LENGTH
            self._out_remaining = length
            extra = b"Content-Length: %d\r\n" % length
        elif request is not None and request.http_version == "1.1":
            self._out = _OUT_CHUNKED
            extra = b"Transfer-Encoding: chunked\r\n"
        else:
            self._out = _OUT_UNTIL_CLOSE
            self.keep_alive = False
        if not self.keep_alive:
            extra += b"Connection: close\r\n"
        elif request is not None and request.http_version == "1.0":
            extra += b"Connection: keep-alive\r\n"
        return extra + b"\r\n"

    def send_data(self, data: bytes) -> bytes:
        """Frame ``data`` for the wire; bytes past a declared Content-Length are dropped."""
        out = self._out
        if out is _OUT_LENGTH:
            if len(data) > self._out_remaining:
                data = data[: self._out_remaining]
            self._out_remaining -= len(data)
            return bytes(data)
        if out is _OUT_IDLE or out is _OUT_DONE:
            raise RuntimeError("send_data outside a response body")
        if not data or out is _OUT_NO_BODY:
            return b""
        if out is _OUT_CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return bytes(data)

    def mark_sent(self, size: int) -> None:
        """Count ``size`` body bytes written without send_data (``os.sendfile``).

        Only for Content-Length or close-delimited bodies, which need no framing per write.
        """
        if self._out is _OUT_LENGTH and 0 <= size <= self._out_remaining:
            self._out_remaining -= size
        elif self._out is not _OUT_UNTIL_CLOSE:
            raise RuntimeError("mark_sent needs an unframed body with that many bytes left")

    def send_end(self) -> bytes:
        """Finish the response body; a body shorter than its Content-Length forbids reuse."""
        out = self._out
        if out is _OUT_LENGTH:
            self._out = _OUT_DONE
            if self._out_remaining:
                self.keep_alive = False
            return b""
        if out is _OUT_IDLE or out is _OUT_DONE:
            raise RuntimeError("send_end outside a response")
        self._out = _OUT_DONE
        return b"0\r\n\r\n" if out is _OUT_CHUNKED else b""
