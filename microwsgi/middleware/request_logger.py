"""``request_logger(...)``: one log line per request, with its status and duration.

The line is written when the handler returns (a streamed body is still being sent then), to
``logging.getLogger('microwsgi.request')`` unless given a logger; where log records go is the
application's logging configuration.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..chains import Handler, Middleware
from ..response import prepare

__all__ = ["request_logger"]


def request_logger(logger: logging.Logger | None = None, level: int = logging.INFO) -> Middleware:
    """Log one line per request: ``GET /path 200 1.3ms`` (and ``[id]`` after ``request_id``).

    The record also carries ``method``, ``path``, ``status``, ``duration_ms`` and
    ``request_id`` as attributes for structured formatters. The duration is the time the
    handler took to return; a streamed body is still being sent after that.
    Logs to ``logging.getLogger('microwsgi.request')`` unless given a ``logger``.
    """
    log = logger if logger is not None else logging.getLogger("microwsgi.request")

    def request_logger_middleware(next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            if not log.isEnabledFor(level):
                return next(request)
            started = time.perf_counter()
            response = prepare(next(request), request)
            duration_ms = (time.perf_counter() - started) * 1000
            rid = request.get("request_id")
            verb, path, status = request["verb"], request["path"], response.status_code
            log.log(
                level,
                "%s %s %d %.1fms" + (" [%s]" if rid is not None else ""),
                verb,
                path,
                status,
                duration_ms,
                *((rid,) if rid is not None else ()),
                extra={
                    "method": verb,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "request_id": rid,
                },
            )
            return response

        return handler

    return request_logger_middleware
