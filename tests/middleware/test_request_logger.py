"""request_logger(...): one line per request, and the three ready-made middleware together."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning

from microwsgi import Server
from microwsgi.middleware import cors, request_id, request_logger

APP = "https://app.example"


def logger_app(*middleware: Any) -> webtest.TestApp:
    server = Server()
    for mw in middleware:
        server.before_all(mw)

    @server.register("GET /hello/:name")
    def hello(request: dict[str, Any]) -> Any:
        return f"hi {request['params']['name']}"

    @server.register("POST /fail")
    def fail(request: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    return webtest.TestApp(server)


def test_request_logger_logs_method_path_status_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = logger_app(request_logger())
    with caplog.at_level(logging.INFO, logger="microwsgi.request"):
        assert app.get("/hello/ann").text == "hi ann"
    [record] = [r for r in caplog.records if r.name == "microwsgi.request"]
    assert record.levelno == logging.INFO
    assert re.fullmatch(r"GET /hello/ann 200 \d+\.\dms", record.getMessage())
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.path == "/hello/ann"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]


def test_request_logger_logs_errors_with_their_status(caplog: pytest.LogCaptureFixture) -> None:
    app = logger_app(request_logger())
    with caplog.at_level(logging.INFO, logger="microwsgi.request"):
        app.post("/fail", status=500, expect_errors=True)  # the 500 is logged to wsgi.errors
        app.get("/nowhere", status=404)
    messages = [r.getMessage() for r in caplog.records if r.name == "microwsgi.request"]
    assert [m.rsplit(" ", 1)[0] for m in messages] == ["POST /fail 500", "GET /nowhere 404"]


def test_request_logger_custom_logger_level_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = logging.getLogger("tests.audit")
    app = logger_app(request_id(), request_logger(audit, logging.WARNING))
    with caplog.at_level(logging.WARNING, logger="tests.audit"):
        res = app.get("/hello/bo", headers={"X-Request-ID": "req-7"})
    [record] = [r for r in caplog.records if r.name == "tests.audit"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(" [req-7]")
    assert record.request_id == "req-7"  # type: ignore[attr-defined]
    assert res.headers["X-Request-ID"] == "req-7"


def test_request_logger_silent_when_level_disabled(caplog: pytest.LogCaptureFixture) -> None:
    app = logger_app(request_logger(level=logging.DEBUG))
    with caplog.at_level(logging.INFO, logger="microwsgi.request"):
        assert app.get("/hello/x").text == "hi x"
    assert [r for r in caplog.records if r.name == "microwsgi.request"] == []


def test_all_three_in_a_route_list(caplog: pytest.LogCaptureFixture) -> None:
    server = Server()

    @server.register("* /api", [request_id(), request_logger(), cors(origins=[APP])])
    def api(request: dict[str, Any]) -> Any:
        return {"id": request["request_id"]}

    app = webtest.TestApp(server)
    with caplog.at_level(logging.INFO, logger="microwsgi.request"):
        res = app.get("/api", headers={"Origin": APP, "X-Request-ID": "r1"})
    assert res.json == {"id": "r1"}
    assert res.headers["X-Request-ID"] == "r1"
    assert res.headers["Access-Control-Allow-Origin"] == APP
    assert any(r.getMessage().startswith("GET /api 200") for r in caplog.records)
