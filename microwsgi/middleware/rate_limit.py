"""``rate_limit(...)``: a budget of requests per client, kept by the `limits` library in memory or
in Redis, so that several processes and hosts share one budget.

Over the budget, a request gets 429 Too Many Requests (RFC 6585 §4) in the framework's JSON
error shape, with ``Retry-After`` (RFC 9110 §10.2.3) in seconds until the window lets the
client in again. The limits use the moving-window strategy, so a client cannot spend two
budgets across a window's edge. When the storage cannot be reached, requests are served
unlimited rather than refused (a limiter must not turn a Redis outage into a site outage): one
warning when it goes, one line when it is back, and the storage is tried again at most once a
second meanwhile, so that requests do not each wait for a connection. Chaining middleware is
the core's business; answering errors is ``failures.py``'s.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..chains import Handler, Middleware
from ..errors import HTTPError
from ..reporting import report

__all__ = ["rate_limit"]

Key = Callable[[dict[str, Any]], object]
RETRY_STORAGE_AFTER = 1.0  # seconds without asking a storage that failed
# A storage on the network answers in milliseconds; one that does not answer within this is
# treated as down rather than holding the request.
_REDIS_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def _remote_addr(request: dict[str, Any]) -> object:
    return request["remote_addr"]


class _Storage:
    """The limiter and its storage's state: up, or down since a failure (and until when it is
    left alone)."""

    def __init__(self, storage: str) -> None:
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        options = _REDIS_OPTIONS if storage.startswith(("redis://", "rediss://")) else {}
        self.url = storage
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage, **options))
        self._down = False
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def available(self) -> bool:
        return not self._down or time.monotonic() >= self._retry_at

    def failed(self, exc: Exception, environ: Any) -> None:
        with self._lock:
            first = not self._down
            self._down, self._retry_at = True, time.monotonic() + RETRY_STORAGE_AFTER
        if first:
            report(
                logging.WARNING,
                "rate_limit: storage %s is unreachable (%s: %s); requests are served without "
                "limits until it is back",
                self.url,
                type(exc).__name__,
                exc,
                environ=environ,
            )

    def succeeded(self, environ: Any) -> None:
        if not self._down:  # PERF: the usual case takes no lock
            return
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            report(logging.INFO, "rate_limit: storage %s is back", self.url, environ=environ)


def rate_limit(limit: str, *, key: Key | None = None, storage: str = "memory://") -> Middleware:
    """Allow each client `limit` requests (the limits library's notation: ``'100/minute'``,
    ``'10/second;1000/hour'``); over it, 429 with ``Retry-After``.

    `key(request)` names the client, by default ``request['remote_addr']`` (the proxy's
    client's when ``Server(trusted_proxies=N)``). `storage` is where the counts live:
    ``'memory://'`` (this process), or ``'redis://HOST:PORT'`` to share one budget between
    processes and hosts. Two ``rate_limit`` with the same `limit` on one storage share the
    budget of a key. Needs the ``ratelimit`` extra: ImportError without it.
    """
    try:
        from limits import parse_many
    except ImportError:
        raise ImportError(
            "rate_limit(...) needs the limits library: pip install 'microwsgi[ratelimit]'"
        ) from None
    try:
        items = parse_many(limit)
    except ValueError:
        raise ValueError(
            f"rate_limit({limit!r}): not a limit in the limits library's notation, such as "
            "'100/minute' or '10/second;1000/hour'"
        ) from None
    store = _Storage(storage)
    key_of = key or _remote_addr
    scope = f"microwsgi:{limit}"

    def rate_limit_middleware(next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            if store.available():
                client = str(key_of(request))
                try:
                    over = _spend(store, items, scope, client)
                except Exception as exc:  # whatever the storage raises: serve, and say so once
                    store.failed(exc, request["environ"])
                else:
                    store.succeeded(request["environ"])
                    if over is not None:
                        raise HTTPError(
                            429,
                            f"rate limit of {limit} exceeded; retry in {over} s",
                            [("Retry-After", str(over))],
                        )
            return next(request)

        return handler

    return rate_limit_middleware


def _spend(store: _Storage, items: list[Any], scope: str, client: str) -> int | None:
    """Spend one request of each limit; None while all allow it, else the seconds until the
    first exhausted one does (at least 1)."""
    for item in items:
        if not store.limiter.hit(item, scope, client):
            reset = store.limiter.get_window_stats(item, scope, client).reset_time
            return max(1, math.ceil(reset - time.time()))
    return None
