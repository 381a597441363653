"""Where the framework's own log records go: one channel, so every failure is reported once.

The channel is the ``microwsgi`` logger whenever something would handle its records: a
handler the application configured (``logging.basicConfig``, gunicorn's ``--log-config``), the
built-in server's (it configures logging when it starts), pytest's. Otherwise, rather than let
Python's last-resort handler print to stderr while the WSGI server's error stream gets nothing,
the record is written to the ``wsgi.errors`` of the request it is about (stderr outside a
request): under gunicorn that is its error log, under WebTest its errors stream.

Deciding per record, instead of adding a default handler to the logger as Flask does, keeps
two promises: a library adds no handlers (the logging HOWTO's rule, which the built-in
server's ``configure_logging`` relies on: it installs its own only when it finds none), and an
application that configures logging after importing its app does not get every line twice.

What to report (a failing handler, a forgotten ``@``) is decided by the callers
(``failures.py``, ``checks.py``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__: list[str] = []

log = logging.getLogger("microwsgi")

_FORMAT = logging.Formatter("microwsgi %(levelname)s: %(message)s")


def _handled(logger: logging.Logger, level: int) -> bool:
    """Whether a handler in `logger`'s hierarchy would take a record at `level`."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(level >= handler.level for handler in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def report(
    level: int,
    message: str,
    *args: object,
    environ: dict[str, Any] | None = None,
    exc_info: BaseException | None = None,
) -> None:
    """Log `message % args` once: on the ``microwsgi`` logger if it is configured, else on
    the request's ``wsgi.errors`` (stderr without a request)."""
    if not log.isEnabledFor(level):
        return
    if _handled(log, level):
        log.log(level, message, *args, exc_info=exc_info, stacklevel=2)
        return
    record = log.makeRecord(log.name, level, "", 0, message, args, None)
    if exc_info is not None:
        record.exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    stream = environ.get("wsgi.errors") if environ is not None else None
    stream = stream if stream is not None else sys.stderr
    try:
        stream.write(_FORMAT.format(record) + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed stream: nowhere left to report
        pass
