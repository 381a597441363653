"""One request/response cycle on one connection: the state behind `start_response`.

This module owns what PEP 3333 asks of the server during one cycle: `start_response` with its
`exc_info` rules, the `write()` callable, sending the headers before the first body byte
(adding Date, Server, and Content-Length when the whole body is known), sending a file with
`os.sendfile`, reading the request body on demand (with `100 Continue` sent only when the
application first reads), and draining what the application left unread so the connection can
be reused. Building the environ and running the application is ``wsgi.py``; framing is the
protocol's; the socket calls are ``sockets.py``.

An `Exchange` is also what the `prepare`, `finish` and `access_log` hooks receive; its public
attributes (`environ`, `head`, `peer`, `sock`, `status`, `headers`, `bytes_sent`, `duration`)
are theirs to read, and `prepare` may set `close_after`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from .._http import check_status_line, parse_content_length
from .answers import SERVER_SOFTWARE, http_date
from .protocol.connection import Connection
from .protocol.events import NEED_DATA, Data, EndOfMessage, ProtocolError, RequestHead
from .sockets import recv_some, send_failure, sendfile_span

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

# Bytes of unread request body consumed after a response so the connection can be reused;
# past this the connection is closed instead (a client cannot make us read an arbitrarily
# large upload nobody asked for).
DRAIN_LIMIT: Final = 1 << 20


# PERF: the statuses applications gave, checked and split once (`check_status_line`):
# '200 OK' -> (200, 'OK'). At most this many are kept; past that a status is checked each time.
_STATUSES: dict[str, tuple[int, str]] = {}
_MAX_STATUSES: Final = 256


class ClientGone(Exception):
    """The peer closed, reset or stalled past the I/O timeout: nothing more can be sent."""


class Exchange:
    """One request and its answer on one connection."""

    __slots__ = (
        "body_read",
        "bytes_sent",
        "client_gone",
        "close_after",
        "continued",
        "duration",
        "environ",
        "head",
        "headers",
        "headers_sent",
        "http",
        "io_timeout",
        "is_head",
        "peer",
        "protocol_error",
        "sock",
        "status",
        "stopping",
    )

    def __init__(
        self,
        sock: socket.socket,
        http: Connection,
        head: RequestHead,
        peer: tuple[str, str],
        io_timeout: float,
        stopping: threading.Event,
    ) -> None:
        self.sock = sock
        self.http = http
        self.head = head
        self.peer = peer
        self.io_timeout = io_timeout
        self.stopping = stopping
        self.environ: dict[str, Any] = {}
        self.is_head = head.method == "HEAD"
        self.status: str | None = None  # as the application gave it, e.g. '200 OK'
        self.headers: list[tuple[str, str]] = []  # as the application gave them
        self.headers_sent = False
        self.continued = False
        self.close_after = False
        self.client_gone = False
        self.protocol_error: ProtocolError | None = None
        self.body_read = 0
        self.bytes_sent = 0
        self.duration = 0.0  # seconds, set when the answer is complete

    # -- the request body ------------------------------------------------------------------

    def pull(self) -> bytes:
        """The next piece of request body, b'' at its end; reads the socket only when needed."""
        http = self.http
        while True:
            try:
                event = http.next_event()
            except ProtocolError as error:  # each handler's name its own: mypyc types them
                self.protocol_error = error
                raise
            if type(event) is Data:
                self.body_read += len(event.data)
                return event.data
            if type(event) is EndOfMessage or event is not NEED_DATA:
                return b""
            if self.head.expect_continue and not self.continued and not self.headers_sent:
                # RFC 9110 §10.1.1: the client waits for this before sending the body, so it
                # is sent only once the application actually asks for the body.
                self.continued = True
                self.send(http.send_informational(100))
            try:
                data = recv_some(self.sock, self.io_timeout)
            except TimeoutError as timeout:
                # RFC 9110 §15.5.9: the client is there but its body stopped coming; it gets
                # 408 (so it may repeat the request), as a head that stops coming does.
                self.protocol_error = ProtocolError(408, "request body not received in time")
                raise self.protocol_error from timeout
            except OSError as exc:
                self.client_gone = True
                raise ClientGone(f"reading the request body: {exc}") from exc
            if not data:
                self.client_gone = True
                raise ClientGone("client closed the connection mid-body")
            http.receive_data(data)

    def drain(self) -> bool:
        """Consume what the app left unread, up to DRAIN_LIMIT bytes; True if the body ended."""
        # Never called once the answer said "close" (a body withheld behind `100 Continue` did).
        if self.http.request_complete:
            return True
        start = self.body_read
        try:
            while self.pull():
                if self.body_read - start > DRAIN_LIMIT:
                    return False
        except (ProtocolError, ClientGone):
            return False
        return self.http.request_complete

    def _body_left_too_big(self) -> bool:
        """True when the unread body (of a request not yet complete) cannot be drained, so the
        answer should announce close."""
        head = self.head
        if self._body_withheld():
            return True
        return (
            head.content_length is not None and head.content_length - self.body_read > DRAIN_LIMIT
        )

    def _body_withheld(self) -> bool:
        """The client waits for `100 Continue` that was never sent, so its body never came."""
        head = self.head
        return (
            head.expect_continue
            and not self.continued
            and (head.chunked or bool(head.content_length))
        )

    # -- the response ----------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)  # PERF: the socket call itself (see sockets.send_all)
        except OSError as exc:
            self.client_gone = True
            raise ClientGone(f"sending the response: {send_failure(exc)}") from exc

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: too late to change the answer, so the error goes up again.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called again without exc_info")
        if type(status) is not str or status not in _STATUSES:
            split = check_status_line(status)
            if len(_STATUSES) < _MAX_STATUSES:
                _STATUSES[status] = split
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's imperative `write()`: sends at once (headers first, if still pending)."""
        if not self.headers_sent:
            self.send(self.head_bytes(None) + self.http.send_data(data))
        elif data:
            self.send(self.http.send_data(data))
        self.bytes_sent += len(data)

    def head_bytes(self, length: int | None, body: bytes | None = None) -> bytes:
        """Status line and headers; `length` (a known total) becomes Content-Length if absent.

        With `body` (the whole body), the framed body and its end follow the head.
        """
        status = self.status
        if status is None:
            raise AssertionError("the application did not call start_response()")
        close = (
            self.close_after
            or self.stopping.is_set()
            or (not self.http.request_complete and self._body_left_too_big())
        )
        code, reason = _STATUSES.get(status) or check_status_line(status)
        data = self.http.send_response(
            code,
            reason,
            self.headers,
            head=self.is_head,
            close=close,
            length=length,
            date=http_date(),
            server=SERVER_SOFTWARE,
            body=body,
        )
        self.close_after = close
        self.headers_sent = True
        return data

    def finish(self) -> None:
        if not self.headers_sent:
            self.send(self.head_bytes(0) + self.http.send_end())
        else:
            tail = self.http.send_end()
            if tail:
                self.send(tail)

    def send_single(self, body: bytes) -> None:
        """The common case, a one-element list: headers and body in one send.

        PERF: one system call per answer, and a Content-Length that needs no chunking.
        """
        self.send(self.head_bytes(None, body))
        self.bytes_sent = len(body)

    def send_span(self, span: tuple[int, int, int]) -> None:
        """Send the file span (fd, offset, size) with `os.sendfile`."""
        fd, offset, size = span
        declared = self._declared_length()
        if declared is not None:
            size = min(size, declared)
        if self.is_head or (self.status or "")[:3] in ("204", "304"):
            self.send(self.head_bytes(size) + self.http.send_end())  # no body: nothing to send
            return
        self.send(self.head_bytes(size))
        try:
            sent = sendfile_span(self.sock, fd, offset, size, self.io_timeout)
        except OSError as exc:
            self.client_gone = True
            raise ClientGone(f"sendfile: {exc}") from exc
        self.bytes_sent = sent
        self.http.mark_sent(sent)  # a short file leaves the count unfinished: no reuse
        self.http.send_end()  # a Content-Length body has no tail to send

    def _declared_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == "content-length":
                return parse_content_length(value.strip(" \t"))
        return None
