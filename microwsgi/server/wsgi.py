"""The WSGI bridge: one parsed request in, one PEP 3333 call out, its answer back on the wire.

This module owns the environ (PEP 3333, percent-decoded `PATH_INFO`, repeated fields joined),
`wsgi.input` (the request body and nothing past it), `wsgi.file_wrapper`, calling the
application and its iterable's `close()`, the answer when the application fails, and the
embedder's hooks around each request. The cycle's state (`start_response`, body reads,
sending) is ``exchange.py``; parsing and framing are the protocol's; accepting, threads and
connection timeouts are the engine's.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from stat import S_ISREG
from typing import IO, Any, Final
from urllib.parse import unquote_to_bytes

from .._http import status_line
from .._wsgi import WSGIApp
from .answers import SERVER_SOFTWARE, error_answer
from .config import Hooks
from .exchange import ClientGone, Exchange
from .logs import log_access
from .protocol import Connection, ProtocolError, RequestHead

log = logging.getLogger("microwsgi.server")

# Header name -> environ key. `None` marks headers the environ carries elsewhere
# (CONTENT_LENGTH comes from the parsed, validated length, never from the raw field).
# PERF: grows at run time with the names clients send (at most 512 of them), so that the
# usual header costs one dict lookup instead of an upper() and a replace() per request.
_ENVIRON_KEYS: dict[str, str | None] = {"content-type": "CONTENT_TYPE", "content-length": None}
_MAX_ENVIRON_KEYS: Final = 512


class FileWrapper:
    """`wsgi.file_wrapper`: iterates a file in blocks; the bridge sends it with `os.sendfile`.

    Sendfile is used when the file is a regular file with a descriptor; the bridge sets
    Content-Length from the file size when the app did not.
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
    """`wsgi.input`: the request body and nothing past it (reads after the end return b'').

    Not an `io.BufferedReader` over an `io.RawIOBase` (as werkzeug's `DechunkedInput`): built
    per request, that costs 22,500 more instructions for a small POST whose app reads the
    body, 8% of the whole request (callgrind, server process, keep-alive client). This is
    the part of the file-object API that PEP 3333 asks for: read, readline, readlines,
    iteration.
    """

    __slots__ = ("_buffer", "_done", "_pull")

    def __init__(self, pull: Callable[[], bytes] | None) -> None:
        """`pull()` gives the next piece of body, b'' at its end; None: there is no body."""
        self._pull = pull
        self._buffer = bytearray()
        self._done = pull is None

    def _fill(self) -> bool:
        """Append the next body bytes to the buffer; False once the body has ended."""
        if self._done:
            return False
        chunk = self._pull()  # type: ignore[misc]  # not done: there is a body to pull
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


# PERF: the `wsgi.input` of every request without a body: it has ended, so nothing in it ever
# changes and one serves all (a new io.BytesIO costs ~1,000 instructions a request).
_NO_BODY: Final = InputStream(None)


class WSGIBridge:
    """Runs a WSGI application for each request of a connection (one per engine)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        io_timeout: float = 30.0,
        stopping: threading.Event | None = None,
        access_log: bool = True,
        hooks: Hooks | None = None,
        errors: IO[str] | None = None,
    ) -> None:
        self.app = app
        self.io_timeout = io_timeout
        # Set when the server shuts down: answers from then on say `Connection: close`.
        self.stopping = stopping if stopping is not None else threading.Event()
        self._errors = errors
        hooks = hooks or Hooks()
        self._prepare = hooks.prepare
        after = [hooks.access_log or (log_access if access_log else None), hooks.finish]
        self._after: tuple[Callable[[Exchange], object], ...] = tuple(h for h in after if h)

    def base_environ(self, server_name: str, server_port: str) -> dict[str, Any]:
        """The environ keys that are the same for every request on one listening socket."""
        return {
            "SCRIPT_NAME": "",
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": self._errors if self._errors is not None else sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def environ(
        self,
        head: RequestHead,
        peer: tuple[str, str],
        base: dict[str, Any],
        body: InputStream,
    ) -> dict[str, Any]:
        """The PEP 3333 environ for `head` from `peer` (address, port as text)."""
        path = head.path
        if "%" in path:
            # PEP 3333: PATH_INFO holds the decoded bytes, each one a latin-1 character.
            path = unquote_to_bytes(path).decode("latin-1")
        env = base.copy()
        env["REQUEST_METHOD"] = head.method
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = head.query
        env["RAW_URI"] = env["REQUEST_URI"] = head.target
        env["SERVER_PROTOCOL"] = "HTTP/1.1" if head.http_version == "1.1" else "HTTP/1.0"
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = peer
        env["wsgi.input"] = body
        if head.content_length is not None:
            env["CONTENT_LENGTH"] = str(head.content_length)
        keys = _ENVIRON_KEYS
        for name, value in head.headers:
            key = keys.get(name, "")
            if key is None:
                continue
            if not key:
                if "_" in name:
                    # Dropped, as nginx does: `X_Forwarded_For` would otherwise land on the
                    # same environ key as `X-Forwarded-For` and could spoof it.
                    continue
                key = "HTTP_" + name.upper().replace("-", "_")
                if len(keys) < _MAX_ENVIRON_KEYS:
                    keys[name] = key
            if key in env:
                env[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                env[key] = value
        if head.authority is not None:
            # RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
            env["HTTP_HOST"] = head.authority
        return env

    def handle(
        self,
        sock: Any,
        http: Connection,
        head: RequestHead,
        peer: tuple[str, str],
        base: dict[str, Any],
    ) -> bool:
        """Answer `head`; True when the connection may carry another request."""
        after_hooks = self._after
        started = time.perf_counter() if after_hooks else 0.0  # PERF: timed only if looked at
        exchange = Exchange(sock, http, head, peer, self.io_timeout, self.stopping)
        body = InputStream(exchange.pull) if head.chunked or head.content_length else _NO_BODY
        environ = exchange.environ = self.environ(head, peer, base, body)
        result: Iterable[bytes] | None = None
        ok = True
        try:
            if self._prepare is not None:
                self._prepare(exchange)
            result = self.app(environ, exchange.start_response)
            if (
                type(result) is list
                and len(result) == 1
                and exchange.status is not None
                and not exchange.headers_sent
                and exchange.protocol_error is None
            ):
                exchange.send_single(result[0])  # PERF: the usual answer, in one send
            else:
                _send(exchange, result)
        except Exception as exc:
            ok = False
            self._fail(exchange, exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("error closing the answer to %s %s", head.method, head.target)
        if after_hooks:
            exchange.duration = time.perf_counter() - started
        for after in after_hooks:
            try:
                after(exchange)
            except Exception:
                log.exception("error in the hook %r after %s %s", after, head.method, head.target)
        if not ok or exchange.close_after:
            return False
        return (http.request_complete or exchange.drain()) and http.keep_alive

    def _fail(self, exchange: Exchange, exc: Exception) -> None:
        """An error while answering: 400/500 if nothing was sent yet, else just close."""
        head = exchange.head
        if exchange.client_gone:
            log.info("%s %s: client went away (%s)", head.method, head.target, exc)
            return
        error = exchange.protocol_error
        if error is None and isinstance(exc, ProtocolError):
            error = exc  # the prepare hook refused the request
        if error is None:
            log.error("error handling %s %s", head.method, head.target, exc_info=exc)
        exchange.close_after = True
        if exchange.headers_sent:
            return  # the framing is broken mid-body: closing tells the client so
        status, message = _refusal(error)
        try:
            answer, body = error_answer(exchange.http, status, message)
            exchange.status, exchange.headers = status_line(status), []
            exchange.headers_sent = True
            exchange.send(answer + body)
        except ClientGone as send_exc:  # the client may be gone too
            log.debug("could not send the %d answer: %s", status, send_exc)
            return
        exchange.bytes_sent = len(body)


def _send(exchange: Exchange, result: Iterable[bytes]) -> None:
    """Send what the application returned, but for a one-element list (``handle`` sends that
    at once): `os.sendfile` for a file wrapper over a regular file, else piece by piece."""
    if exchange.protocol_error is not None and not exchange.headers_sent:
        # The body could not be read (the client's fault): whatever the app made of that, the
        # client gets the 4xx, not an answer to a request it never finished.
        raise exchange.protocol_error
    span = result.sendfile_span() if type(result) is FileWrapper else None
    if span is not None:
        exchange.send_span(span)
        return
    for chunk in result:
        if chunk:
            exchange.write(chunk)
    exchange.finish()


def _refusal(error: ProtocolError | None) -> tuple[int, str]:
    if error is None:
        return 500, "Internal Server Error"
    return error.status, error.message
