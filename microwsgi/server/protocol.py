"""Sans-IO HTTP/1.1 server protocol: bytes in, events out, bytes to write back.

This module owns the wire format of one server-side connection (RFC 9112): parsing request
heads and bodies (Content-Length or chunked) into events, enforcing size limits, rejecting
request-smuggling shapes with the status to answer, choosing response framing, and deciding
whether the connection can carry another request. It never touches a socket, a clock or a
thread: the socket loop (``loop.py``) feeds it bytes and writes what it returns, and the WSGI
bridge (``wsgi.py``) turns its events into a PEP 3333 environ.

Line endings are strict: every line of a head, chunk header and trailer section must end in
CRLF. RFC 9112 §2.2 only *allows* a recipient to accept a bare LF; accepting it would let us see
a header line that an intermediary in front of us does not, which is how requests get smuggled.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final, TypeAlias

__all__ = [  # noqa: RUF022 - grouped: events, sentinels, then the rest
    "Request", "Data", "EndOfMessage", "ConnectionClosed", "Event", "NEED_DATA", "PAUSED",
    "Sentinel", "Connection", "Limits", "ProtocolError",
]  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """Size caps; each names the status a request answers with when it goes past."""

    max_target: int = 8190  # request-target longer -> 414
    max_header_bytes: int = 65536  # header section (request line excluded) -> 431
    max_header_count: int = 100  # -> 431
    max_body_size: int | None = None  # declared or chunked total above -> 413
    max_chunk_line: int = 4096  # chunk-size line including extensions -> 400


DEFAULT_LIMITS: Final = Limits()


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; answer with ``status`` (if still possible) and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


@dataclass
class Request:
    method: str
    target: str
    http_version: str
    headers: list[tuple[str, str]]
    content_length: int | None
    chunked: bool
    expect_continue: bool
    keep_alive: bool


@dataclass
class Data:
    data: bytes


@dataclass
class EndOfMessage:
    trailers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ConnectionClosed:
    """The peer closed cleanly between requests."""


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"  # feed more bytes
    PAUSED = "PAUSED"  # request complete; waiting for start_next_cycle()

    def __repr__(self) -> str:
        return self.value


NEED_DATA: Final = Sentinel.NEED_DATA
PAUSED: Final = Sentinel.PAUSED

Event: TypeAlias = Request | Data | EndOfMessage | ConnectionClosed

# RFC 9110 §5.6.2: token = 1*tchar.
_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = _TCHAR + rb"+"
_TOKEN_RE: Final = re.compile(_TOKEN)
_TOKEN_STR_RE: Final = re.compile(_TOKEN.decode("ascii"))
# RFC 9112 §3: method SP request-target SP HTTP-version. The target allows obs-text so that
# clients sending raw UTF-8 paths still work; PEP 3333 decodes it as latin-1 either way.
_REQUEST_LINE_RE: Final = re.compile(
    rb"(%s) ([\x21-\x7e\x80-\xff]+) (HTTP/[0-9]\.[0-9])" % (_TCHAR + rb"{1,32}")
)
# RFC 9112 §5 / RFC 9110 §5.5: field-name ":" OWS field-value OWS. The value holds VCHAR,
# obs-text, and SP/HTAB between them; any other control byte (NUL, CR, DEL...) is refused
# rather than cleaned up.
_FIELD_RE: Final = re.compile(
    rb"(%s):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*"
    % _TOKEN
)
_SCHEME_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*:")  # RFC 3986 §3.1
# RFC 9110 §7.2 / RFC 3986 §3.2.2: uri-host [ ":" port ], host an IP-literal or a reg-name.
_HOST_RE: Final = re.compile(
    r"(?:\[[0-9A-Za-z:.!$&'()*+,;=\-_~]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
_BAD_EXT_RE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # control bytes but HTAB
_CHUNK_SIZE_RE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,18}")  # beyond 10**18 bytes is an attack, not a body
_SPECIAL_FIELDS: Final = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "expect")
)
_FRAMING_FIELDS: Final = frozenset(("connection", "transfer-encoding", "content-length"))
_MAX_METHOD: Final = 32  # longer than any registered method; bounds the request-line scan
_MAX_VERSION: Final = len(b" HTTP/1.1")
_DATA_PIECE: Final = 65536


class _HeadReader:
    """Field lines (a request's header section or a chunked trailer section) and their limits."""

    def __init__(self, limits: Limits) -> None:
        self.fields: list[tuple[str, str]] = []
        self.max_bytes = limits.max_header_bytes
        self.max_count = limits.max_header_count
        self.used = 0

    def check_partial(self, partial: int) -> None:
        """``partial``: bytes of the unfinished line, a trailing CR not counted."""
        if self.used + partial > self.max_bytes:
            raise ProtocolError(431, "header section too large")

    def add(self, line: bytes, has_cr: bool = True) -> None:
        """Take one field line, without its line ending (``has_cr``: it ended in CRLF)."""
        # Limits come before the line's own shape so that a long malformed line gets the same
        # answer whether it arrives whole or byte by byte (see check_partial).
        self.used += len(line) + 2
        if self.used > self.max_bytes:
            raise ProtocolError(431, "header section too large")
        if len(self.fields) >= self.max_count:
            raise ProtocolError(431, "too many header fields")
        if not has_cr:
            raise ProtocolError(400, "bare LF line ending")
        match = _FIELD_RE.fullmatch(line)
        if match is None:
            raise ProtocolError(400, _field_problem(line))
        name, value = match.groups()
        self.fields.append((name.lower().decode("ascii"), value.decode("latin-1")))


def _field_problem(line: bytes) -> str:
    """Say why ``line`` is not a field line (all of these are 400)."""
    if line[:1] in (b" ", b"\t"):
        # RFC 9112 §5.2: obs-fold is obsolete; a server may reject it with 400.
        return "obsolete line folding"
    name, colon, _ = line.partition(b":")
    if not colon:
        return "header line without a colon"
    if not _TOKEN_RE.fullmatch(name):
        # RFC 9112 §5.1: this includes whitespace between the field name and the colon.
        return f"invalid header name {name[:64]!r}"
    return f"invalid byte in header {name.decode('ascii')!r}"


def _split_line(buf: bytearray, start: int, scan: int) -> tuple[bytes | None, bool, int]:
    """(line without its line ending, ended in CRLF, index past the LF), or (None, _, resume)."""
    end = buf.find(b"\n", scan if scan > start else start)
    if end == -1:
        return None, False, len(buf)
    if end > start and buf[end - 1] == 0x0D:
        return bytes(buf[start : end - 1]), True, end + 1
    return bytes(buf[start:end]), False, end + 1


def _content_len(buf: bytearray) -> int:
    """Length without a trailing CR, which may be the start of a CRLF."""
    return len(buf) - (buf[-1:] == b"\r")


def _tokens(value: str) -> list[str]:
    """The elements of a comma-separated list, lower-cased (RFC 9110 §5.6.1)."""
    return [t for t in (t.strip(" \t").lower() for t in value.split(",")) if t]


def _check_request_line_prefix(buf: bytes | bytearray, end: int, max_target: int) -> None:
    """Check what is known of a request line: ``buf[:end]``, complete or not.

    Run on partial lines too, so a TLS handshake or a target that never ends is refused at once
    rather than buffered; the checks run in one order so a request gets the same status however
    its bytes are split. Each call costs O(1) until the line is longer than ``max_target``.
    """
    sp1 = buf.find(b" ", 0, min(end, _MAX_METHOD + 1))
    method_end = sp1 if sp1 != -1 else min(end, _MAX_METHOD + 1)
    if (method_end and not _TOKEN_RE.fullmatch(buf, 0, method_end)) or sp1 == 0:
        raise ProtocolError(400, "malformed request method")
    if sp1 == -1:
        if end > _MAX_METHOD:
            raise ProtocolError(400, "malformed request method")
        return
    if end - sp1 - 1 <= max_target:
        return
    sp2 = buf.find(b" ", sp1 + 1, end)
    if (sp2 if sp2 != -1 else end) - sp1 - 1 > max_target:
        raise ProtocolError(414, "request target too long")
    if end - sp2 > _MAX_VERSION:
        raise ProtocolError(400, "malformed request line")


def _request_line(line: bytes, has_cr: bool, limits: Limits) -> tuple[str, str, str]:
    if len(line) > limits.max_target:  # only then can the target be too long
        _check_request_line_prefix(line, len(line), limits.max_target)
    if not has_cr:
        raise ProtocolError(400, "bare LF line ending")
    match = _REQUEST_LINE_RE.fullmatch(line)
    if match is None:
        raise ProtocolError(400, "malformed request line")
    method, target, version = match.groups()
    # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT) or asterisk-form;
    # anything else (say "../etc") would reach the application as a path without a "/".
    if not (
        target[0] == 0x2F  # "/"
        or target == b"*"
        or _SCHEME_RE.match(target)
        or method == b"CONNECT"
    ):
        raise ProtocolError(400, "invalid request target")
    # RFC 9110 §6.2: other minor versions of 1.x are 1.1-compatible, but we only speak those
    # two; any other well-formed version is answered 505.
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError(505, f"unsupported version {version.decode('ascii')}")
    return method.decode("ascii"), target.decode("latin-1"), version[5:].decode("ascii")


def _content_length(headers: list[tuple[str, str]], limits: Limits) -> int | None:
    values = {v.strip(" \t") for k, raw in headers if k == "content-length" for v in raw.split(",")}
    if not values:
        return None
    # RFC 9110 §8.6: identical repeats may be folded into one; differing values are an error.
    if len(values) > 1:
        raise ProtocolError(400, "conflicting Content-Length values")
    (value,) = values
    if not _DIGITS_RE.fullmatch(value):
        raise ProtocolError(400, "invalid Content-Length")
    length = int(value)
    if limits.max_body_size is not None and length > limits.max_body_size:
        raise ProtocolError(413, "request body too large")
    return length


def _is_chunked(headers: list[tuple[str, str]], version: str) -> bool:
    """Whether a request with Transfer-Encoding fields is chunked; any other coding is refused."""
    codings = [t for k, v in headers if k == "transfer-encoding" for t in _tokens(v)]
    # RFC 9112 §6.1: a server MUST treat Transfer-Encoding in a 1.0 message as faulty framing;
    # §6.3: chunked must be the final coding of a request, once.
    if version == "1.0":
        raise ProtocolError(400, "Transfer-Encoding on HTTP/1.0")
    if codings.count("chunked") > 1:
        raise ProtocolError(400, "chunked applied twice")
    if "chunked" in codings[:-1] or not codings:
        raise ProtocolError(400, "chunked is not the final transfer coding")
    if codings != ["chunked"]:
        raise ProtocolError(501, "unsupported transfer coding")
    return True


def _build_request(
    method: str, target: str, version: str, headers: list[tuple[str, str]], limits: Limits
) -> Request:
    special = [(k, v) for k, v in headers if k in _SPECIAL_FIELDS]  # usually a short list
    hosts = 0
    chunked = False
    length = None
    connection: list[str] = []
    expect = False
    for key, value in special:
        if key == "host":
            hosts += 1
            if not _HOST_RE.fullmatch(value):
                # RFC 9112 §3.2: a Host with an invalid field value is answered 400.
                raise ProtocolError(400, "invalid Host")
        elif key == "connection":
            connection += _tokens(value)
        elif key == "expect":
            expect = expect or "100-continue" in _tokens(value)
        elif key == "content-length" and length is None:
            length = _content_length(special, limits)
        elif key == "transfer-encoding" and not chunked:
            chunked = _is_chunked(special, version)
    # RFC 9112 §3.2: exactly one Host on 1.1, at most one on 1.0.
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        raise ProtocolError(400, "missing or repeated Host")
    if chunked and length is not None:
        # RFC 9112 §6.3: both present is a smuggling attempt; we reject rather than pick one.
        raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
    # RFC 9112 §9.3: persistent by default on 1.1; on 1.0 only when the client asks.
    if version == "1.1":
        keep_alive = "close" not in connection
    else:
        keep_alive = "keep-alive" in connection and "close" not in connection
    return Request(
        method, target, version, headers, length, chunked, version == "1.1" and expect, keep_alive
    )


class _In(enum.Enum):
    HEAD = enum.auto()
    BODY = enum.auto()  # Content-Length body
    CHUNK_SIZE = enum.auto()
    CHUNK_DATA = enum.auto()
    CHUNK_CRLF = enum.auto()
    TRAILERS = enum.auto()
    DONE = enum.auto()
    CLOSED = enum.auto()


class _Out(enum.Enum):
    IDLE = enum.auto()
    NO_BODY = enum.auto()  # HEAD, 1xx, 204, 304
    LENGTH = enum.auto()
    CHUNKED = enum.auto()
    UNTIL_CLOSE = enum.auto()  # RFC 9112 §6.3 item 8: the body ends when we close
    DONE = enum.auto()


class Connection:
    """One server-side HTTP/1.1 connection, one request/response cycle at a time."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._eof = False
        self._error: ProtocolError | None = None
        self._keep_alive = True
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._in = _In.HEAD
        self._out = _Out.IDLE
        self._request: Request | None = None
        self._reqline: tuple[str, str, str] | None = None
        self._head = _HeadReader(self.limits)
        self._pos = 0  # start of the next unparsed line while reading the head
        self._scan = 0  # where the search for LF resumes (bytes before it hold none)
        self._remaining = 0  # body bytes still to come (Content-Length or current chunk)
        self._body_total = 0
        self._out_remaining = 0

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer; ``b''`` means the peer closed its side."""
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
            event = self._next_event()
        except ProtocolError as exc:
            self._error = exc
            self._keep_alive = False
            raise
        if event is NEED_DATA and self._eof:
            return self._at_eof()
        return event

    def _at_eof(self) -> Event:
        if self._in is _In.HEAD and not self._buf:
            self._in = _In.CLOSED
            return ConnectionClosed()
        self._error = ProtocolError(400, "connection closed mid-request")
        self._keep_alive = False
        raise ProtocolError(400, "connection closed mid-request")

    def _next_event(self) -> Event | Sentinel:
        state = self._in
        if state is _In.HEAD:
            return self._read_head()
        if state is _In.BODY:
            return self._read_length_body()
        if state in (_In.CHUNK_SIZE, _In.CHUNK_DATA, _In.CHUNK_CRLF, _In.TRAILERS):
            return self._read_chunked()
        if state is _In.DONE:
            return PAUSED
        return ConnectionClosed()

    def _read_head(self) -> Event | Sentinel:
        buf = self._buf
        if self._reqline is None:
            # RFC 9112 §2.2: ignore empty lines (CRLF) received before the request line.
            while buf[:2] == b"\r\n":
                del buf[:2]
                self._scan = 0
            if not self._scan and self._read_whole_head():
                return self._start_body()
        while True:
            line, has_cr, nxt = _split_line(buf, self._pos, self._scan)
            if line is None:
                self._scan = nxt
                partial = _content_len(buf) - self._pos
                if self._reqline is None:
                    _check_request_line_prefix(buf, partial, self.limits.max_target)
                else:
                    self._head.check_partial(partial)
                return NEED_DATA
            self._pos = self._scan = nxt
            if self._reqline is None:
                self._reqline = _request_line(line, has_cr, self.limits)
            elif line or not has_cr:
                self._head.add(line, has_cr)
            else:
                del buf[:nxt]
                self._pos = self._scan = 0
                return self._start_body()

    def _read_whole_head(self) -> bool:
        """The common case, a whole head in the buffer: split it at once (same checks)."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end == -1 or end > self.limits.max_target + self.limits.max_header_bytes:
            return False  # incomplete, or too long: the line reader stops at the limit
        lines = bytes(buf[:end]).split(b"\r\n")
        if buf.count(b"\n", 0, end) != len(lines) - 1:
            return False  # a bare LF: let the line-by-line reader report it in order
        self._reqline = _request_line(lines[0], True, self.limits)
        reader, fields = self._head, lines[1:]
        matches = list(map(_FIELD_RE.fullmatch, fields))
        if (
            end - len(lines[0]) <= reader.max_bytes
            and len(fields) <= reader.max_count
            and None not in matches
        ):
            reader.fields = [
                (m[1].lower().decode("ascii"), m[2].decode("latin-1"))
                for m in matches
                if m is not None
            ]
        else:
            for line in fields:  # raises at the first line over a limit or malformed
                reader.add(line)
        del buf[: end + 4]
        return True

    def _start_body(self) -> Request:
        assert self._reqline is not None
        request = _build_request(*self._reqline, self._head.fields, self.limits)
        self._request = request
        if not request.keep_alive:
            self._keep_alive = False
        if request.chunked:
            self._in = _In.CHUNK_SIZE
        else:
            self._in = _In.BODY
            self._remaining = request.content_length or 0
        return request

    def _take(self) -> Data | Sentinel:
        size = min(self._remaining, len(self._buf), _DATA_PIECE)
        if not size:
            return NEED_DATA
        data = bytes(self._buf[:size])
        del self._buf[:size]
        self._remaining -= size
        return Data(data)

    def _read_length_body(self) -> Event | Sentinel:
        if self._remaining:
            return self._take()
        self._in = _In.DONE
        return EndOfMessage([])

    def _read_chunked(self) -> Event | Sentinel:
        # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF, ended by a
        # zero-size chunk, an optional trailer section and a blank line.
        buf = self._buf
        while True:
            if self._in is _In.CHUNK_DATA:
                if self._remaining:
                    return self._take()
                self._in = _In.CHUNK_CRLF
            if self._in is _In.CHUNK_CRLF:
                if buf[:2] != b"\r\n"[: len(buf)]:
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                if len(buf) < 2:
                    return NEED_DATA
                del buf[:2]
                self._in = _In.CHUNK_SIZE
            line, has_cr, nxt = _split_line(buf, 0, self._scan)
            if line is None:
                self._scan = nxt
                self._check_partial_chunk_line()
                return NEED_DATA
            del buf[:nxt]
            self._scan = 0
            if self._in is not _In.TRAILERS:
                self._chunk_header(line, has_cr)
            elif line or not has_cr:
                self._head.add(line, has_cr)
            else:
                self._in = _In.DONE
                return EndOfMessage(self._head.fields)

    def _check_partial_chunk_line(self) -> None:
        partial = _content_len(self._buf)
        if self._in is _In.TRAILERS:
            self._head.check_partial(partial)
        elif partial > self.limits.max_chunk_line:
            raise ProtocolError(400, "chunk header too long")

    def _chunk_header(self, line: bytes, has_cr: bool) -> None:
        if len(line) > self.limits.max_chunk_line:
            raise ProtocolError(400, "chunk header too long")
        if not has_cr:
            raise ProtocolError(400, "bare LF line ending")
        size, semicolon, ext = line.partition(b";")
        if semicolon:
            # RFC 9112 §7.1.1: BWS may precede ';'. Extensions are accepted and ignored, but
            # may not smuggle control bytes.
            size = size.rstrip(b" \t")
            if _BAD_EXT_RE.search(ext):
                raise ProtocolError(400, "invalid chunk extension")
        if not _CHUNK_SIZE_RE.fullmatch(size):
            raise ProtocolError(400, "invalid chunk size")
        length = int(size, 16)
        self._body_total += length
        max_body = self.limits.max_body_size
        if max_body is not None and self._body_total > max_body:
            raise ProtocolError(413, "request body too large")
        if length:
            self._in = _In.CHUNK_DATA
            self._remaining = length
        else:
            # Trailer fields share the header section's limits (counted afresh).
            self._in = _In.TRAILERS
            self._head = _HeadReader(self.limits)

    # -- sending -------------------------------------------------------------------------

    @property
    def request(self) -> Request | None:
        """The current cycle's request, once its head has been parsed."""
        return self._request

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry another request after the current cycle."""
        return self._keep_alive and self._error is None

    @property
    def request_complete(self) -> bool:
        return self._in is _In.DONE

    @property
    def response_complete(self) -> bool:
        return self._out is _Out.DONE

    @property
    def peer_closed(self) -> bool:
        """The peer has sent EOF (buffered pipelined requests may still be answered)."""
        return self._eof

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._buf) if self._in is _In.DONE else b""

    def start_next_cycle(self) -> None:
        if not (self.request_complete and self.response_complete and self.keep_alive):
            raise RuntimeError(
                "cannot start a new cycle: request or response unfinished, or closing"
            )
        self._reset_cycle()

    def send_informational(self, status: int = 100) -> bytes:
        """An interim response; ``b''`` to HTTP/1.0 clients, who never get one (RFC 9110 §15.2)."""
        if not 100 <= status < 200 or status == 101:
            raise ValueError(f"{status} is not an informational status we can send")
        if self._out is not _Out.IDLE:
            raise RuntimeError("informational response after the final response started")
        if self._request is None or self._request.http_version == "1.0":
            return b""
        return b"HTTP/1.1 %d %s\r\n\r\n" % (status, _reason(status))

    def send_response(
        self, status: int, reason: str, headers: list[tuple[str, str]], *, head: bool = False
    ) -> bytes:
        """The status line and header section; chooses the body framing and keep-alive."""
        if self._out is not _Out.IDLE:
            raise RuntimeError("response already started")
        if not 200 <= status <= 999:
            raise ValueError(f"invalid final status {status}; use send_informational for 1xx")
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        length: str | None = None
        close = False
        for name, value in headers:
            key = name.lower()
            if key in _FRAMING_FIELDS:
                if key == "connection":
                    # Hop-by-hop: we write our own, honouring an application's wish to close.
                    close = close or "close" in _tokens(value)
                    continue
                if key == "transfer-encoding":
                    raise ValueError("Transfer-Encoding is hop-by-hop; the server frames the body")
                value = value.strip(" \t")
                if not _DIGITS_RE.fullmatch(value) or length not in (None, value):
                    raise ValueError(f"invalid or conflicting Content-Length {value!r}")
                length = value
                if status == 204:
                    continue  # RFC 9110 §8.6: never on 204
            if not _TOKEN_STR_RE.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a token")
            lines.append(f"{name}: {value}\r\n")
        head_bytes = _encode_head(lines)
        return head_bytes + self._choose_framing(status, length, head, close)

    def _choose_framing(self, status: int, length: str | None, head: bool, close: bool) -> bytes:
        request = self._request
        if close or self._error is not None or request is None:
            self._keep_alive = False
        if request is not None and request.method == "HEAD":
            head = True
        extra = b""
        if head or status in (204, 304):
            # RFC 9110 §6.4.1: no content; a Content-Length here describes the GET response.
            self._out = _Out.NO_BODY
        elif length is not None:
            self._out = _Out.LENGTH
            self._out_remaining = int(length)
        elif request is not None and request.http_version == "1.1":
            self._out = _Out.CHUNKED
            extra = b"Transfer-Encoding: chunked\r\n"
        else:
            self._out = _Out.UNTIL_CLOSE
            self._keep_alive = False
        if not self.keep_alive:
            extra += b"Connection: close\r\n"
        elif request is not None and request.http_version == "1.0":
            extra += b"Connection: keep-alive\r\n"
        return extra + b"\r\n"

    def send_data(self, data: bytes) -> bytes:
        """Frame ``data`` for the wire; bytes past a declared Content-Length are dropped."""
        out = self._out
        if out is _Out.IDLE or out is _Out.DONE:
            raise RuntimeError("send_data outside a response body")
        if not data or out is _Out.NO_BODY:
            return b""
        if out is _Out.CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if out is _Out.LENGTH:
            data = data[: self._out_remaining]
            self._out_remaining -= len(data)
        return bytes(data)

    def mark_sent(self, size: int) -> None:
        """Count ``size`` body bytes written without send_data (``os.sendfile``).

        Only for Content-Length or close-delimited bodies, which need no framing per write.
        """
        if self._out is _Out.LENGTH and 0 <= size <= self._out_remaining:
            self._out_remaining -= size
        elif self._out is not _Out.UNTIL_CLOSE:
            raise RuntimeError("mark_sent needs an unframed body with that many bytes left")

    def send_end(self) -> bytes:
        """Finish the response body; a body shorter than its Content-Length forbids reuse."""
        out = self._out
        if out is _Out.IDLE or out is _Out.DONE:
            raise RuntimeError("send_end outside a response")
        self._out = _Out.DONE
        if out is _Out.CHUNKED:
            return b"0\r\n\r\n"
        if out is _Out.LENGTH and self._out_remaining:
            self._keep_alive = False
        return b""


def _encode_head(lines: list[str]) -> bytes:
    """Encode header lines, refusing what would split or corrupt them on the wire."""
    try:
        raw = "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"response head is not latin-1: {exc}") from None
    # Each line brings exactly one CR and one LF; any more is an injected line ending.
    if raw.count(b"\n") != len(lines) or raw.count(b"\r") != len(lines) or b"\0" in raw:
        bad = next(x for x in lines if x.count("\n") + x.count("\r") > 2 or "\0" in x)
        raise ValueError(f"CR, LF or NUL inside the response line {bad!r}")
    return raw


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("latin-1")
    except ValueError:
        return b"Unknown"
