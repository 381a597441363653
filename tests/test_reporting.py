"""One traceback per failure: the `microwsgi` logger when logging is configured, else the
request's `wsgi.errors`, never both.

In-process tests play both configurations; the subprocess tests run the real thing with
logging left as a newcomer leaves it (unconfigured): the built-in server and WebTest.
(Gunicorn's error log is checked in tests/e2e/test_gunicorn.py.)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microwsgi import Server

ROOT = Path(__file__).resolve().parent.parent
TRACEBACK = "Traceback (most recent call last)"

FAILING_APP = textwrap.dedent(
    """
    from microwsgi import Server

    server = Server()

    @server.register("GET /boom/:id")
    def explode(request):
        raise RuntimeError("kaboom " + request["params"]["id"])
    """
)


def explode(request: dict[str, Any]) -> Any:
    raise RuntimeError("kaboom")


@contextlib.contextmanager
def unconfigured_logging() -> Iterator[None]:
    """Logging as in a process that never configured it, for the body of a test (pytest
    attaches its capturing handlers to the root and the microwsgi loggers for each phase)."""
    loggers = [logging.getLogger(), logging.getLogger("microwsgi")]
    saved = [logger.handlers for logger in loggers]
    for logger in loggers:
        logger.handlers = []
    try:
        yield
    finally:
        for logger, handlers in zip(loggers, saved, strict=True):
            logger.handlers = handlers


def test_unconfigured_the_traceback_goes_to_wsgi_errors_only(
    server: Server, call_wsgi: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server.register_handler("GET /boom", explode)
    errors = io.StringIO()
    with unconfigured_logging():
        assert call_wsgi(server, "/boom", environ={"wsgi.errors": errors}).code == 500
    written = errors.getvalue()
    assert written.count(TRACEBACK) == 1
    assert "RuntimeError: kaboom" in written
    assert "explode (GET /boom) while handling GET /boom" in written
    assert capsys.readouterr().err == ""  # not also Python's last-resort handler


def test_configured_the_traceback_goes_to_the_logger_only(
    server: Server, call_wsgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server.register_handler("GET /boom", explode)
    errors = io.StringIO()
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        assert call_wsgi(server, "/boom", environ={"wsgi.errors": errors}).code == 500
    assert errors.getvalue() == ""
    [record] = [r for r in caplog.records if r.name == "microwsgi"]
    assert "explode (GET /boom)" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "kaboom"


def test_a_logger_turned_down_reports_nothing_anywhere(
    server: Server, call_wsgi: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("microwsgi"), "level", logging.CRITICAL)
    server.register_handler("GET /boom", explode)
    errors = io.StringIO()
    with unconfigured_logging():
        assert call_wsgi(server, "/boom", environ={"wsgi.errors": errors}).code == 500
    assert errors.getvalue() == ""


def _python(code: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_webtest_gets_the_traceback_once_in_its_errors_stream(tmp_path: Path) -> None:
    (tmp_path / "failing_app.py").write_text(FAILING_APP)
    code = textwrap.dedent(
        """
        import json, webtest
        from failing_app import server
        response = webtest.TestApp(server).get("/boom/7", expect_errors=True)
        print(json.dumps({"status": response.status_int, "errors": response.errors}))
        """
    )
    proc = _python(code, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == 500
    assert result["errors"].count(TRACEBACK) == 1
    assert "explode (GET /boom/:id) while handling GET /boom/7" in result["errors"]
    assert "RuntimeError: kaboom 7" in result["errors"]
    assert TRACEBACK not in err


def test_built_in_server_logs_the_traceback_once(tmp_path: Path) -> None:
    (tmp_path / "failing_app.py").write_text(FAILING_APP)
    code = "from failing_app import server; server.start_server('127.0.0.1', 0, listen_msg=True)"
    proc = _python(code, tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Server listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/boom/7")
        answer = conn.getresponse()
        assert answer.status == 500
        assert b"kaboom" not in answer.read()
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.count(TRACEBACK) == 1, err
    assert err.count("RuntimeError: kaboom 7") == 1, err
    assert "explode (GET /boom/:id) while handling GET /boom/7" in err
