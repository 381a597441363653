"""The WSGI bridge: one parsed request in, one PEP 3333 call out, its response back on the wire.

This module owns everything between a protocol `Request` event and the bytes of its answer:
the environ (PEP 3333, percent-decoded `PATH_INFO`, joined repeated headers), `wsgi.input`
bounded to the body (with `100 Continue` sent only when the application first reads),
`start_response` with its `exc_info` rules, the `write()` callable, `wsgi.file_wrapper` with
`os.sendfile`, the app iterable's `close()`, and draining an unread body before keep-alive.

It leaves parsing and framing to `protocol.py`, and accepting, selectors, threads and
connection timeouts to `loop.py`. The socket it is handed is blocking with kernel send and
receive timeouts set by the loop; every wait here is bounded by the I/O timeout.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from email.utils import formatdate
from http import HTTPStatus
from stat import S_ISREG
from types import TracebackType
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from .protocol import (
    NEED_DATA,
    Connection,
    Data,
    EndOfMessage,
    ProtocolError,
    Request,
)

__all__ = ["SERVER_SOFTWARE", "FileWrapper", "InputStream", "WSGIBridge"]

SERVER_SOFTWARE = "microwsgi"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

log = logging.getLogger("microwsgi.server")
access_log = logging.getLogger("microwsgi.access")

_RECV_SIZE = 65536
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
# Header name -> environ key. `None` marks headers the environ carries elsewhere
# (CONTENT_LENGTH comes from the parsed, validated length, never from the raw field).
_ENVIRON_KEYS: dict[str, str | None] = {
    "content-type": "CONTENT_TYPE",
    "content-length": None,
}
_date_cache: tuple[int, str] = (0, "")
_ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %s %d %.1fms'


def http_date() -> str:
    """The IMF-fixdate for now, formatted at most once a second (RFC 9110 §5.6.7)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class ClientGone(Exception):
    """The peer closed, reset or stalled past the I/O timeout: nothing more can be sent."""


class FileWrapper:
    """`wsgi.file_wrapper`: iterates a file in blocks; the bridge sends it with `os.sendfile`.

    Sendfile is used when the file is a regular file with a descriptor and the response is
    framed by Content-Length (the bridge sets it from the file size when the app did not).
    """

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.blksize):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendfile_span(self) -> tuple[int, int, int] | None:
        """(fd, offset, remaining size) when the file can go through `os.sendfile`, else None."""
        try:
            fd = self.filelike.fileno()
            offset = self.filelike.tell()
            stat = os.fstat(fd)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        if not S_ISREG(stat.st_mode):  # pipes and sockets cannot be sent by sendfile
            return None
        return fd, offset, max(0, stat.st_size - offset)


class InputStream:
    """`wsgi.input`: the request body and nothing past it (reads after the end return b'')."""

    __slots__ = ("_buffer", "_done", "_pull")

    def __init__(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._buffer = bytearray()
        self._done = False

    def _fill(self) -> bool:
        """Append the next body bytes to the buffer; False once the body has ended."""
        if self._done:
            return False
        chunk = self._pull()
        if not chunk:
            self._done = True
            return False
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if limit is not None and len(self._buffer) >= limit:
                end = limit
                break
            start = len(self._buffer)
            if not self._fill():
                end = len(self._buffer)
                break
        return self._take(end if limit is None else min(end, limit))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class _Exchange:
    """One request/response cycle on one connection: the state `start_response` needs."""

    __slots__ = (
        "body_read",
        "bytes_sent",
        "client_gone",
        "close_after",
        "continued",
        "head",
        "headers",
        "headers_sent",
        "io_timeout",
        "proto",
        "protocol_error",
        "request",
        "sock",
        "status",
        "stopping",
    )

    def __init__(
        self,
        sock: socket.socket,
        proto: Connection,
        request: Request,
        io_timeout: float,
        stopping: threading.Event,
    ) -> None:
        self.sock = sock
        self.stopping = stopping
        self.io_timeout = io_timeout
        self.proto = proto
        self.request = request
        self.head = request.method == "HEAD"
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.continued = False
        self.close_after = False
        self.client_gone = False
        self.protocol_error: ProtocolError | None = None
        self.body_read = 0
        self.bytes_sent = 0

    # -- the request body ------------------------------------------------------------------

    def pull(self) -> bytes:
        """The next piece of request body, b'' at its end; reads the socket only when needed."""
        proto = self.proto
        while True:
            try:
                event = proto.next_event()
            except ProtocolError as exc:
                self.protocol_error = exc
                raise
            if type(event) is Data:
                if event.data:
                    self.body_read += len(event.data)
                    return event.data
            elif type(event) is EndOfMessage or event is not NEED_DATA:
                return b""
            else:
                if self.request.expect_continue and not self.continued and not self.headers_sent:
                    # RFC 9110 §10.1.1: the client waits for this before sending the body,
                    # so it is sent only once the application actually asks for the body.
                    self.continued = True
                    self.sendall(proto.send_informational(100))
                try:
                    data = recv_some(self.sock, self.io_timeout)
                except OSError as exc:
                    self.client_gone = True
                    raise ClientGone(f"reading the request body: {exc}") from exc
                if not data:
                    self.client_gone = True
                    raise ClientGone("client closed the connection mid-body")
                proto.receive_data(data)

    def drain(self, limit: int) -> bool:
        """Consume what the app left unread, up to `limit` bytes; True if the body ended."""
        if self.proto.request_complete:
            return True
        if self._body_withheld():
            return False  # the client never sent the body: the connection cannot be reused
        start = self.body_read
        try:
            while self.pull():
                if self.body_read - start > limit:
                    return False
        except (ProtocolError, ClientGone):
            return False
        return self.proto.request_complete

    # -- the response ----------------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        try:
            send_all(self.sock, data)
        except OSError as exc:
            self.client_gone = True
            raise ClientGone(f"sending the response: {exc}") from exc

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
        if type(status) is not str or len(status) < 4 or not status[:3].isdigit():
            raise ValueError(f"invalid WSGI status {status!r}")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's imperative `write()`: sends at once (headers first, if still pending)."""
        if not self.headers_sent:
            self.sendall(self.head_bytes(None) + self.proto.send_data(data))
        elif data:
            self.sendall(self.proto.send_data(data))
        self.bytes_sent += len(data)

    def head_bytes(self, length: int | None) -> bytes:
        """Status line and headers; `length` (a known total) becomes Content-Length if absent."""
        status = self.status
        if status is None:
            raise AssertionError("the application did not call start_response()")
        code = int(status[:3])
        headers = list(self.headers)
        has_length = has_date = has_server = False
        for name, _ in headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered == "date":
                has_date = True
            elif lowered == "server":
                has_server = True
        if not has_date:
            headers.append(("Date", http_date()))
        if not has_server:
            headers.append(("Server", SERVER_SOFTWARE))
        if (
            length is not None
            and not has_length
            and code >= 200
            and code not in (204, 304)
            and not (self.head and length == 0)
        ):
            headers.append(("Content-Length", str(length)))
        if self.close_after or self.stopping.is_set() or self._body_left_too_big():
            self.close_after = True
            headers.append(("Connection", "close"))
        data = self.proto.send_response(code, status[4:], headers, head=self.head)
        self.headers_sent = True
        return data

    def _body_left_too_big(self) -> bool:
        """True when the unread body cannot be drained, so the answer should announce close."""
        request = self.request
        if self.proto.request_complete:
            return False
        if self._body_withheld():
            return True
        return (
            request.content_length is not None
            and request.content_length - self.body_read > WSGIBridge.drain_limit
        )

    def _body_withheld(self) -> bool:
        """The client waits for `100 Continue` that was never sent, so its body never came."""
        request = self.request
        return (
            request.expect_continue
            and not self.continued
            and (request.chunked or bool(request.content_length))
        )

    def finish(self) -> None:
        if not self.headers_sent:
            self.sendall(self.head_bytes(0) + self.proto.send_end())
        else:
            tail = self.proto.send_end()
            if tail:
                self.sendall(tail)

    def send_single(self, body: bytes) -> None:
        """The common case, a one-element list: headers and body in one send."""
        proto = self.proto
        self.sendall(self.head_bytes(len(body)) + proto.send_data(body) + proto.send_end())
        self.bytes_sent = len(body)

    def send_file(self, wrapper: FileWrapper) -> bool:
        """Send a file wrapper with `os.sendfile`; False when it must be iterated instead."""
        span = wrapper.sendfile_span()
        if span is None:
            return False
        fd, offset, size = span
        declared = _content_length(self.headers)
        if declared is not None:
            if declared > size:
                return False  # a short file: iterate, and the protocol reports the mismatch
            size = declared
        if self.head or (self.status or "")[:3] in ("204", "304"):
            self.sendall(self.head_bytes(size) + self.proto.send_end())  # no body: nothing to send
            return True
        self.sendall(self.head_bytes(size))
        sent = 0
        while sent < size:
            try:
                count = os.sendfile(self.sock.fileno(), fd, offset + sent, size - sent)
            except BlockingIOError:
                if not wait_io(self.sock, True, self.io_timeout):
                    self.client_gone = True
                    raise ClientGone("sendfile: timed out") from None
                continue
            except OSError as exc:
                self.client_gone = True
                raise ClientGone(f"sendfile: {exc}") from exc
            if count == 0:
                break
            sent += count
        self.bytes_sent = sent
        self.proto.mark_sent(sent)  # a short file leaves the count unfinished: no reuse
        tail = self.proto.send_end()
        if tail:
            self.sendall(tail)
        return True


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def wait_io(sock: socket.socket, writable: bool, timeout: float) -> bool:
    """Wait until `sock` is readable (or writable); False on timeout."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT if writable else select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def recv_some(sock: socket.socket, timeout: float) -> bytes:
    """Bytes from `sock`, waiting up to about `timeout`; raises TimeoutError.

    Client sockets are blocking with a short kernel receive timeout (SO_RCVTIMEO, set by
    the loop), so a read that finds data, or waits briefly for it, is one system call.
    """
    try:
        return sock.recv(_RECV_SIZE)
    except BlockingIOError:  # the kernel receive timeout passed: wait the rest in poll()
        pass
    if wait_io(sock, False, timeout):
        with contextlib.suppress(BlockingIOError):
            return sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)
    raise TimeoutError("timed out reading from the client")


def send_all(sock: socket.socket, data: bytes) -> None:
    """Write all of `data`; each blocking step is bounded by the socket's SO_SNDTIMEO."""
    try:
        sock.sendall(data)
    except BlockingIOError:
        raise TimeoutError("timed out writing to the client") from None


def split_target(target: str) -> tuple[str, str, str | None]:
    """(path, query, authority) of a request-target in origin, absolute or asterisk form."""
    authority = None
    if not target.startswith("/"):
        scheme_end = target.find("://")
        if scheme_end > 0:
            # RFC 9112 §3.2.2: absolute-form; its authority replaces the Host field.
            rest = target[scheme_end + 3 :]
            cut = len(rest)
            for sep in "/?":
                pos = rest.find(sep)
                if 0 <= pos < cut:
                    cut = pos
            authority, target = rest[:cut], rest[cut:]
            if not target.startswith("/"):
                target = "/" + target
    path, _, query = target.partition("?")
    return path, query, authority


class WSGIBridge:
    """Runs a WSGI application for each request of a connection (one per server)."""

    # Bytes of unread request body consumed after a response so the connection can be
    # reused; past this the connection is closed instead (a client cannot make us read
    # an arbitrarily large upload nobody asked for).
    drain_limit = 1 << 20

    def __init__(
        self,
        app: WSGIApp,
        server_name: str,
        server_port: int,
        *,
        errors: IO[str] | None = None,
        access_log: bool = True,
        io_timeout: float = 30.0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.app = app
        # Set when the server shuts down: answers from then on say `Connection: close`.
        self.stopping = stopping if stopping is not None else threading.Event()
        self.io_timeout = io_timeout
        self.access_log = access_log
        self.base_environ: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": server_name,
            "SERVER_PORT": str(server_port),
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def environ(self, request: Request, peer: tuple[str, str], body: InputStream) -> dict[str, Any]:
        """The PEP 3333 environ for `request` from `peer` (address, port as text)."""
        target = request.target
        authority = None
        if target.startswith("/"):
            path, _, query = target.partition("?")
        elif target == "*":
            path, query = "*", ""
        else:
            path, query, authority = split_target(target)
        if "%" in path:
            # PEP 3333: PATH_INFO holds the decoded bytes, each one a latin-1 character.
            path = unquote_to_bytes(path).decode("latin-1")
        env = self.base_environ.copy()
        env["REQUEST_METHOD"] = request.method
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = query
        env["RAW_URI"] = env["REQUEST_URI"] = target
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version, "HTTP/1.1")
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = peer
        env["wsgi.input"] = body
        if request.content_length is not None:
            env["CONTENT_LENGTH"] = str(request.content_length)
        keys = _ENVIRON_KEYS
        for name, value in request.headers:
            key = keys.get(name, "")
            if key is None:
                continue
            if not key:
                if "_" in name:
                    # Dropped, as nginx does: `X_Forwarded_For` would otherwise land on
                    # the same environ key as `X-Forwarded-For` and could spoof it.
                    continue
                key = "HTTP_" + name.upper().replace("-", "_")
                if len(keys) < 512:
                    keys[name] = key
            if key in env:
                env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                env[key] = value
        if authority is not None:
            env["HTTP_HOST"] = authority
        return env

    def handle(
        self,
        sock: socket.socket,
        proto: Connection,
        request: Request,
        peer: tuple[str, str],
    ) -> bool:
        """Answer `request`; True when the connection may carry another request."""
        started = time.perf_counter()
        exchange = _Exchange(sock, proto, request, self.io_timeout, self.stopping)
        environ = self.environ(request, peer, InputStream(exchange.pull))
        result: Iterable[bytes] | None = None
        ok = True
        try:
            result = self.app(environ, exchange.start_response)
            if (
                type(result) is list
                and len(result) == 1
                and exchange.status is not None
                and not exchange.headers_sent
            ):
                exchange.send_single(result[0])
            elif not (type(result) is FileWrapper and exchange.send_file(result)):
                for chunk in result:
                    if chunk:
                        exchange.write(chunk)
                exchange.finish()
        except Exception as exc:
            ok = False
            self._fail(exchange, request, exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception(
                        "error closing the response of %s %s", request.method, request.target
                    )
        if self.access_log and access_log.isEnabledFor(logging.INFO):
            self._log_access(exchange, peer, started)
        if not ok or exchange.close_after:
            return False
        return exchange.drain(self.drain_limit) and proto.keep_alive

    def _fail(self, exchange: _Exchange, request: Request, exc: Exception) -> None:
        """An error while answering: 400/500 if nothing was sent yet, else just close."""
        if exchange.client_gone:
            log.info("%s %s: client went away (%s)", request.method, request.target, exc)
            return
        error = exchange.protocol_error
        if error is None:
            log.error("error handling %s %s", request.method, request.target, exc_info=exc)
        if exchange.headers_sent:
            return  # the framing is broken mid-body: closing tells the client so
        status = error.status if error is not None else 500
        message = error.message if error is not None else "Internal Server Error"
        exchange.status = f"{status} {_reason(status)}"
        exchange.headers = [("Content-Type", "text/plain; charset=utf-8")]
        exchange.close_after = True
        try:
            exchange.send_single(message.encode() + b"\n")
        except Exception as send_exc:  # the client may be gone too: nothing else to do
            log.debug("could not send the %d answer: %s", status, send_exc)

    def _log_access(self, exchange: _Exchange, peer: tuple[str, str], started: float) -> None:
        request = exchange.request
        status = exchange.status[:3] if exchange.headers_sent and exchange.status else "-"
        args = (
            peer[0],
            request.method,
            request.target,
            request.http_version,
            status,
            exchange.bytes_sent,
            (time.perf_counter() - started) * 1000,
        )
        # makeRecord + handle is what Logger.info does, minus the stack walk that looks
        # for the caller's file and line: always this line, and a real cost per request.
        access_log.handle(
            access_log.makeRecord(
                access_log.name, logging.INFO, __file__, 0, _ACCESS_FORMAT, args, None
            )
        )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
