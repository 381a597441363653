"""Log output of the server: a one-line access log, coloured on a terminal, written in batches.

The server logs through `logging` only: `microwsgi.access` for one line per request,
`microwsgi.server` for everything else. `configure_logging()` sends both to stderr when the
application has not configured logging itself, so an application that has keeps full control
of where the lines go and how they look. An embedder replaces the access line altogether with
the `access_log` hook (see `Hooks`).

Writing happens off the request path: serving threads hand records to a `QueueHandler` and a
`QueueListener` thread formats and writes them, many lines to one write.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import time
from logging.handlers import QueueHandler, QueueListener
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .exchange import Exchange


access_logger: Final = logging.getLogger("microwsgi.access")
_ACCESS_FORMAT: Final = '%s - "%s %s HTTP/%s" %s %d %.1fms'

_RESET: Final = "\x1b[0m"
_STATUS_COLOURS: Final = {"2": "\x1b[32m", "3": "\x1b[36m", "4": "\x1b[33m", "5": "\x1b[31m"}
_LEVEL_COLOURS: Final = {"WARNING": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[1;31m"}
_DIM: Final = "\x1b[2m"
# How long the writer waits for more lines before writing what it has.
_BATCH_SECONDS: Final = 0.1


def log_access(exchange: Exchange) -> None:
    """The built-in access line for one answered request, on `microwsgi.access`."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    head = exchange.head
    status = exchange.status[:3] if exchange.headers_sent and exchange.status else "-"
    args = (
        exchange.peer[0],
        head.method,
        head.target,
        head.http_version,
        status,
        exchange.bytes_sent,
        exchange.duration * 1000,
    )
    # PERF: makeRecord + handle is what Logger.info does, minus the stack walk that looks for
    # the caller's file and line: always this line, and a real cost per request.
    record = access_logger.makeRecord(
        access_logger.name, logging.INFO, __file__, 0, _ACCESS_FORMAT, args, None
    )
    record.__dict__["status"] = status  # for the formatter's colour; PERF: `extra=` loops
    access_logger.handle(record)


class ServerFormatter(logging.Formatter):
    """`[HH:MM:SS] 127.0.0.1 - "GET / HTTP/1.1" 200 12 0.3ms`; other records get their level.

    With `colour`, an access line is green/cyan/yellow/red by status class, and warnings and
    errors stand out.
    """

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour
        self._stamp: tuple[int, str] = (0, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if self._stamp[0] != second:  # PERF: strftime once a second, not once a line
            self._stamp = (second, time.strftime("%H:%M:%S", time.localtime(second)))
        stamp = self._stamp[1]
        message = record.getMessage()
        if record.name == access_logger.name:
            line = f"[{stamp}] {message}"
            status = getattr(record, "status", None)
            if self.colour and status is not None:
                colour = _STATUS_COLOURS.get(str(status)[:1], "")
                line = f"{_DIM}[{stamp}]{_RESET} {colour}{message}{_RESET}"
        else:
            level = record.levelname
            line = f"[{stamp}] {level}: {message}"
            if self.colour and level in _LEVEL_COLOURS:
                line = f"{_LEVEL_COLOURS[level]}{line}{_RESET}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Unprepared(QueueHandler):
    """Hands the record itself to the writer thread, which formats it there."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # PERF: QueueHandler formats and copies each record in the calling (serving) thread;
        # the record is ours alone (the logger does not propagate), so skip both.
        return record


class _BatchingListener(QueueListener):
    """Writes the lines that piled up while it waited, in one write: one system call per
    batch instead of one per request. Warnings and errors are written at once."""

    def __init__(self, records: queue.SimpleQueue[Any], stream: IO[str], colour: bool) -> None:
        super().__init__(records)
        self._records = records
        self._stream = stream
        self._formatter = ServerFormatter(colour)

    def dequeue(self, block: bool) -> Any:
        record = self._records.get(block)
        if record is None:  # what QueueListener.stop() enqueues
            return record
        batch = [record]
        if record.levelno < logging.WARNING:
            time.sleep(_BATCH_SECONDS)
        try:
            while True:
                more = self._records.get_nowait()
                if more is None:
                    self._records.put(more)  # stop after this batch
                    break
                batch.append(more)
        except queue.Empty:
            pass
        return batch

    def handle(self, batch: Any) -> None:
        lines = []
        for record in batch:
            try:
                lines.append(self._formatter.format(record))
            except Exception:  # a record whose message does not format: say so, go on
                lines.append(f"(unprintable log record from {record.name})")
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # a closed stream: nowhere left to log
            pass


def _wants_colour(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(stream: IO[str] | None = None) -> None:
    """Send server logs to `stream` (stderr) unless logging is already configured."""
    logger = logging.getLogger("microwsgi")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if logger.handlers or logging.getLogger().handlers:
        return
    stream = stream if stream is not None else sys.stderr
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = _BatchingListener(records, stream, _wants_colour(stream))
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued
    logger.addHandler(_Unprepared(records))
    logger.propagate = False
