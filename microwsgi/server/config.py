"""Server options and their one set of defaults, used by `serve()` and the CLI (and listed in
docs/devserver.md's table).

This module owns `ServerConfig` (every option of `serve()`, `DevServer` and `Engine`, with its
default and its validation) and `Hooks` (what an embedder such as a gunicorn worker plugs into
each request and into the loop). The defaults of a request head's size limits are HTTP rules
and come from ``microwsgi/_http.py``; how the options are applied is the engine's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from .._http import MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_TARGET
from .protocol.events import Limits

if TYPE_CHECKING:
    from .exchange import Exchange


DEFAULT_HOST: Final = "localhost"
DEFAULT_PORT: Final = 9090


@dataclass(frozen=True)
class ServerConfig:
    """Server options; every one is also a keyword of `serve()` and `DevServer`."""

    threads: int = 8  # threads answering requests
    max_target: int = MAX_TARGET  # longer request-target -> 414
    max_request_line: int | None = None  # longer request line (CRLF excluded) -> 414
    max_header_bytes: int = MAX_HEADER_BYTES  # larger header section -> 431
    max_header_count: int = MAX_HEADER_COUNT  # more field lines -> 431
    max_field_size: int | None = None  # longer field line (CRLF included) -> 431
    max_body_size: int | None = None  # larger request body -> 413
    header_timeout: float = 10.0  # a request head must arrive within it, else 408 and close
    keepalive_timeout: float = 5.0  # an idle keep-alive connection is closed after it
    io_timeout: float = 30.0  # per read or write of a body
    shutdown_timeout: float = 10.0  # how long a graceful stop waits for in-flight requests
    # On a graceful stop, how long an idle keep-alive connection stays open for a request its
    # client may be sending already (answered with `Connection: close`); 0: closed at once.
    keepalive_on_stop: float = 0.0
    backlog: int = 1024  # listen() backlog of a socket the server binds itself
    access_log: bool = True  # one line per request on the `microwsgi.access` logger
    max_connections: int | None = None  # at this many open connections, stop accepting
    max_requests: int | None = None  # after this many requests, stop gracefully

    def limits(self) -> Limits:
        """The parser's limits."""
        return Limits(
            max_target=self.max_target,
            max_request_line=self.max_request_line,
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            max_field_size=self.max_field_size,
            max_body_size=self.max_body_size,
        )

    @classmethod
    def from_options(cls, **options: Any) -> ServerConfig:
        """A config from keyword options, refusing unknown names and impossible values."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
        config = cls(**options)
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError naming the first option whose value cannot work."""
        for name in ("threads", "max_target", "max_header_bytes", "max_header_count", "backlog"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_request_line", "max_field_size", "max_connections", "max_requests"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit)")
        if self.max_body_size is not None and self.max_body_size < 0:
            raise ValueError("max_body_size must not be negative (or None for no limit)")
        for name in ("header_timeout", "keepalive_timeout", "io_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        for name in ("shutdown_timeout", "keepalive_on_stop"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True)
class Hooks:
    """What an embedder plugs into the engine; every hook is optional.

    `prepare(exchange)` runs before the application, in the serving thread, once
    `exchange.environ` is built from `exchange.head`: it may add or change environ keys (say
    `wsgi.url_scheme` from a trusted proxy's header), set `exchange.close_after` (the answer
    then says `Connection: close`) or run a pre-request hook. If it raises `ProtocolError`,
    the request is refused with that error's status; any other exception is a 500.
    `finish(exchange)` runs once the answer is sent
    (a post-request hook) and `access_log(exchange)` replaces the built-in access line; both
    get the finished `Exchange` (see its public attributes) and their errors are only logged.
    `tick()` runs in the loop thread about every `tick_interval` seconds, also while a graceful
    stop waits for in-flight requests (a gunicorn worker's heartbeat).
    `defer_accept(held)` runs in the loop thread before each accept, with the number of
    connections the engine holds: True leaves the connection waiting to another process
    sharing the listening sockets (a gunicorn worker holding fewer); the engine then looks
    away from them for ``loop.py``'s `DEFER_ACCEPT` seconds, and takes the connection if it
    still waits.
    """

    prepare: Callable[[Exchange], object] | None = None
    finish: Callable[[Exchange], object] | None = None
    access_log: Callable[[Exchange], object] | None = None
    tick: Callable[[], object] | None = None
    tick_interval: float = 1.0
    defer_accept: Callable[[int], bool] | None = None

    def __post_init__(self) -> None:
        if not self.tick_interval > 0:
            raise ValueError("tick_interval must be a positive number of seconds")
