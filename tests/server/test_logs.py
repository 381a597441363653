"""Tests for microwsgi.server.logs: the access line, its colours, and the batching writer."""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from server_live import Client, get, hello_app, serving

from microwsgi.server import logs

ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %s %d %.1fms'


def access_record(status: str = "404") -> logging.LogRecord:
    args = ("127.0.0.1", "GET", "/x", "1.1", status, 9, 0.5)
    record = logging.LogRecord(
        "microwsgi.access", logging.INFO, __file__, 0, ACCESS_FORMAT, args, None
    )
    record.status = status
    return record


def test_access_lines_are_coloured_by_status_only_for_a_terminal() -> None:
    plain = logs.ServerFormatter(colour=False).format(access_record())
    assert plain.endswith('] 127.0.0.1 - "GET /x HTTP/1.1" 404 9 0.5ms') and "\x1b" not in plain
    assert "\x1b[33m127.0.0.1" in logs.ServerFormatter(colour=True).format(access_record())
    assert "\x1b[32m" in logs.ServerFormatter(colour=True).format(access_record("200"))


def test_other_records_carry_their_level_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "microwsgi.server", logging.ERROR, __file__, 0, "it broke", None, sys.exc_info()
        )
    line = logs.ServerFormatter(colour=True).format(record)
    assert "ERROR: it broke" in line and "ValueError: boom" in line and "\x1b[31m" in line


class Recording(io.StringIO):
    """A stream that counts its writes and lets a test wait for the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = threading.Event()

    def write(self, text: str) -> int:
        self.writes += 1
        count = super().write(text)
        self.written.set()
        return count


@pytest.fixture
def configured() -> Iterator[tuple[Recording, logging.Logger]]:
    """`configure_logging` on a clean `microwsgi` logger, writing to a recording stream."""
    logger = logging.getLogger("microwsgi")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    root_handlers = logging.getLogger().handlers[:]
    logger.handlers.clear()
    logging.getLogger().handlers.clear()
    stream = Recording()
    try:
        logs.configure_logging(stream)
        yield stream, logger
    finally:
        for handler in logger.handlers:
            if isinstance(handler, logging.handlers.QueueHandler):
                handler.queue.put_nowait(None)  # ends the writer thread
        logger.handlers[:], logger.level, logger.propagate = saved
        logging.getLogger().handlers[:] = root_handlers


def test_records_go_through_a_queue_to_the_writer_thread(
    configured: tuple[Recording, logging.Logger],
) -> None:
    stream, logger = configured
    assert isinstance(logger.handlers[0], logging.handlers.QueueHandler)
    logging.getLogger("microwsgi.access").handle(access_record("200"))
    assert stream.written.wait(5)
    assert stream.getvalue().endswith('"GET /x HTTP/1.1" 200 9 0.5ms\n')


def test_lines_that_piled_up_are_written_in_one_write() -> None:
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for _ in range(50):  # all queued before the writer looks: they are one batch
        records.put(access_record("200"))
    stream = Recording()
    writer = logs._BatchingListener(records, stream, colour=False)
    writer.start()
    try:
        assert stream.written.wait(5)
    finally:
        writer.stop()
    assert stream.getvalue().count("\n") == 50 and stream.writes == 1


def test_warnings_are_written_at_once(configured: tuple[Recording, logging.Logger]) -> None:
    stream, _ = configured
    logging.getLogger("microwsgi.server").warning("disk %s", "full")
    assert stream.written.wait(5)
    assert "WARNING: disk full" in stream.getvalue()


def test_an_unformattable_record_is_reported_not_lost() -> None:
    # Handed to the writer directly: under pytest, logging a broken record raises at once.
    stream = io.StringIO()
    writer = logs._BatchingListener(queue.SimpleQueue(), stream, colour=False)
    bad = logging.LogRecord(
        "microwsgi.server", logging.WARNING, __file__, 0, "%d apples", ("many",), None
    )
    writer.handle([bad, access_record()])
    lines = stream.getvalue().splitlines()
    assert lines[0] == "(unprintable log record from microwsgi.server)"
    assert lines[1].endswith('"GET /x HTTP/1.1" 404 9 0.5ms')


def test_logging_configured_by_the_application_is_left_alone() -> None:
    logger = logging.getLogger("microwsgi")
    saved = logger.handlers[:]
    mine = logging.NullHandler()
    logger.addHandler(mine)
    try:
        logs.configure_logging(io.StringIO())
        assert logger.handlers == [*saved, mine]
    finally:
        logger.removeHandler(mine)


def test_the_server_logs_one_access_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "microwsgi.access")
    with serving(hello_app, access_log=True) as server, Client(server.port) as client:
        assert client.request(get("/hello?x=1")).status == 200
    lines = [r for r in caplog.records if r.name == "microwsgi.access"]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert message.startswith('127.0.0.1 - "GET /hello?x=1 HTTP/1.1" 200 20 ')
    assert lines[0].status == "200"


def test_no_access_line_when_the_logger_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "microwsgi.access")
    with serving(hello_app, access_log=True) as server, Client(server.port) as client:
        assert client.request(get()).status == 200
    assert not [r for r in caplog.records if r.name == "microwsgi.access"]
