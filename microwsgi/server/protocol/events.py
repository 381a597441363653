"""The protocol's vocabulary: the events a connection yields, its limits, and its one error.

This module owns the data that crosses the protocol's boundary: `RequestHead`, `Data`,
`EndOfMessage` and `ConnectionClosed` (what `Connection.next_event()` returns), the
`NEED_DATA` and `PAUSED` sentinels, the size `Limits` a connection enforces, and
`ProtocolError`, which carries the status to answer with; and `Sentinel`, the one kind of named
constant the protocol compares by identity (those two, and the states of its state machines).
It holds no behaviour: parsing is ``head.py`` and ``body.py``, the state machine
``connection.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeAlias

from ..._http import MAX_CHUNK_LINE, MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_TARGET


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Size caps; each names the status a request answers with when it goes past.

    `max_request_line` and `max_field_size` are off by default (the target and section caps
    bound them); an embedder mirroring gunicorn's `limit_request_line` and
    `limit_request_field_size` sets them, counted as gunicorn counts them.
    """

    max_target: int = MAX_TARGET  # request-target longer -> 414
    max_request_line: int | None = None  # request line, CRLF excluded, longer -> 414
    max_header_bytes: int = MAX_HEADER_BYTES  # header section (request line excluded) -> 431
    max_header_count: int = MAX_HEADER_COUNT  # field lines -> 431
    max_field_size: int | None = None  # one field line, CRLF included, longer -> 431
    max_body_size: int | None = None  # declared or chunked total above -> 413
    max_chunk_line: int = MAX_CHUNK_LINE  # chunk-size line including extensions -> 400


DEFAULT_LIMITS: Final = Limits()


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; answer with ``status`` (if still possible) and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


@dataclass(slots=True)
class RequestHead:
    """A request's line and header section, checked and interpreted.

    `path`, `query` and `authority` are the request-target split by its form (RFC 9112 §3.2):
    the fragment is dropped, userinfo never kept; `authority` is set only by absolute-form
    (where it replaces Host, RFC 9112 §3.2.2) and authority-form. `headers` are the fields
    in arrival order, names lower-cased.
    """

    method: str
    target: str
    http_version: str  # "1.1" or "1.0"
    headers: list[tuple[str, str]]
    content_length: int | None
    chunked: bool
    expect_continue: bool
    keep_alive: bool
    path: str
    query: str
    authority: str | None = None

    # Written out, not generated: mypyc compiles this one into native code (a generated
    # __init__ stays interpreted, and a request builds one head).
    def __init__(
        self,
        method: str,
        target: str,
        http_version: str,
        headers: list[tuple[str, str]],
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        keep_alive: bool,
        path: str,
        query: str,
        authority: str | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.keep_alive = keep_alive
        self.path = path
        self.query = query
        self.authority = authority


@dataclass(slots=True)
class Data:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    trailers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class ConnectionClosed:
    """The peer closed cleanly between requests."""


class Sentinel:
    """A named constant, compared by identity (``event is NEED_DATA``).

    PERF: not an `enum.Enum` member: in Python 3.11 a member looked up on its Enum class goes
    through the metaclass's ``__getattr__`` hook (300 ns, about 1,000 instructions, against
    27 ns for a module global), and a request looks at the protocol's states a dozen times.
    Each constant is a module global, defined once.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")  # feed more bytes
PAUSED: Final = Sentinel("PAUSED")  # request complete; waiting for start_next_cycle()

Event: TypeAlias = RequestHead | Data | EndOfMessage | ConnectionClosed
