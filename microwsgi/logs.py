"""Log output of the development server: a one-line access log, coloured on a terminal.

The server logs through `logging` only (`microwsgi.access` for one line per request,
`microwsgi.server` for everything else). `configure_logging()` adds a handler to stderr
when the application has not configured logging itself, so an application that has keeps
full control of where the lines go and how they look.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import IO

__all__ = ["BatchingHandler", "ServerFormatter", "configure_logging"]

_RESET = "\x1b[0m"
_STATUS_COLOURS = {"2": "\x1b[32m", "3": "\x1b[36m", "4": "\x1b[33m", "5": "\x1b[31m"}
_LEVEL_COLOURS = {"WARNING": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[1;31m"}
_DIM = "\x1b[2m"


class ServerFormatter(logging.Formatter):
    """`[HH:MM:SS] 127.0.0.1 - "GET / HTTP/1.1" 200 12 0.3ms`; other records get their level.

    With `colour`, the status is green/cyan/yellow/red by class and warnings stand out.
    """

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    _stamp: tuple[int, str] = (0, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime("%H:%M:%S", time.localtime(second)))
        stamp = self._stamp[1]
        message = record.getMessage()
        if record.name == "microwsgi.access":
            line = f"[{stamp}] {message}"
            if self.colour and isinstance(record.args, tuple) and len(record.args) > 4:
                colour = _STATUS_COLOURS.get(str(record.args[4])[:1], "")
                line = f"{_DIM}[{stamp}]{_RESET} {colour}{message}{_RESET}"
        else:
            level = record.levelname
            line = f"[{stamp}] {level}: {message}"
            if self.colour and level in _LEVEL_COLOURS:
                line = f"{_LEVEL_COLOURS[level]}{line}{_RESET}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class BatchingHandler(logging.Handler):
    """Writes records to a stream in batches, at most `interval` seconds after they happen.

    One `write` per request would be a system call (and a GIL hand-over) on the server's
    hot path; batching makes the access log nearly free under load and is invisible to a
    person reading it. Warnings and errors are written at once.
    """

    def __init__(self, stream: IO[str], interval: float = 0.1) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        # A deque: workers append (under the handler's lock) while the flusher pops under its
        # own; deque operations are atomic, so no line appended mid-flush is lost.
        self._lines: deque[str] = deque()
        self._write_lock = threading.Lock()
        self._pending = threading.Event()
        self._flusher = threading.Thread(target=self._run, name="microwsgi-log", daemon=True)
        self._flusher.start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        if record.levelno >= logging.WARNING:
            self.flush()
        elif len(self._lines) == 1:
            self._pending.set()

    def flush(self) -> None:
        with self._write_lock:
            pending = self._lines
            lines = [pending.popleft() for _ in range(len(pending))]
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # a closed stream: nowhere left to log
                    pass

    def _run(self) -> None:
        while True:
            self._pending.wait()
            self._pending.clear()
            time.sleep(self.interval)
            self.flush()


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
    handler = BatchingHandler(stream)
    handler.setFormatter(ServerFormatter(colour=_wants_colour(stream)))
    logger.addHandler(handler)
    logger.propagate = False
