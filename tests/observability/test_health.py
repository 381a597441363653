"""server.health(): 200 while every check passes, 503 naming each failing check's exception type,
nothing more to the client, one log line when a check starts failing and one when it recovers."""

from __future__ import annotations

import logging
import re

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning

from microwsgi import Server


class DatabaseDown(ConnectionError):
    pass


def failing() -> None:
    raise DatabaseDown("password=hunter2 at 10.0.0.5")


def test_no_checks_is_healthy(server: Server, app: webtest.TestApp) -> None:
    server.health()
    res = app.get("/healthz")
    assert res.status_int == 200
    assert res.json == {"status": "ok", "checks": {}}
    assert res.headers["Cache-Control"] == "no-store"


def test_every_check_passing_is_200_with_each_named(server: Server, app: webtest.TestApp) -> None:
    server.health(checks={"db": lambda: True, "cache": lambda: None, "queue": lambda: 0})
    res = app.get("/healthz")
    assert res.json == {"status": "ok", "checks": {"db": "ok", "cache": "ok", "queue": "ok"}}


def test_a_raising_check_is_503_with_its_type_only(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    server.health(checks={"cache": lambda: True, "db": failing})
    res = app.get("/healthz", status=503)
    assert res.json == {"status": "failing", "checks": {"cache": "ok", "db": "DatabaseDown"}}
    assert b"hunter2" not in res.body and b"Traceback" not in res.body


def test_a_check_returning_false_fails(server: Server, app: webtest.TestApp) -> None:
    server.health(checks={"disk": lambda: False})
    assert app.get("/healthz", status=503).json == {
        "status": "failing",
        "checks": {"disk": "failed"},
    }


def test_debug_mode_does_not_add_the_message() -> None:
    server = Server(debug=True)
    server.health(checks={"db": failing})
    res = webtest.TestApp(server).get("/healthz", status=503)
    assert b"hunter2" not in res.body


def test_head_and_another_path(server: Server, app: webtest.TestApp) -> None:
    server.health("/-/ready", checks={"db": lambda: True})
    res = app.head("/-/ready")
    assert res.status_int == 200 and res.body == b""
    assert int(res.headers["Content-Length"]) > 0
    app.get("/healthz", status=404)
    app.post("/-/ready", status=405)


def test_checks_run_at_every_request(server: Server, app: webtest.TestApp) -> None:
    state = {"up": True}
    server.health(checks={"db": lambda: state["up"]})
    assert app.get("/healthz").status_int == 200
    state["up"] = False
    assert app.get("/healthz", status=503).json["checks"] == {"db": "failed"}
    state["up"] = True
    assert app.get("/healthz").status_int == 200


def test_a_failure_is_logged_once_with_its_traceback_and_the_recovery_once(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    state = {"up": False}

    def db() -> bool:
        if not state["up"]:
            failing()
        return True

    server.health(checks={"db": db})
    with caplog.at_level(logging.INFO, logger="microwsgi"):
        for _ in range(3):
            app.get("/healthz", status=503)
        state["up"] = True
        for _ in range(2):
            app.get("/healthz", status=200)
    records = [r for r in caplog.records if "health check" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "health check 'db' failed: DatabaseDown: password=hunter2 at 10.0.0.5"),
        (logging.INFO, "health check 'db' passes again"),
    ]
    assert records[0].exc_info is not None and records[0].exc_info[0] is DatabaseDown


def test_the_route_is_internal_and_listed(server: Server) -> None:
    server.health()
    (resource,) = server.resources()
    assert resource.endpoints["GET"].internal is True
    assert server.routes() == [
        {
            "verbs": ["GET"],
            "path": "/healthz",
            "name": None,
            "handler": "server.health()",
            "middleware": [],
        }
    ]


def test_user_routes_are_not_internal(server: Server) -> None:
    @server.register("GET /x")
    def x(request: dict[str, object]) -> str:
        return "x"

    (resource,) = server.resources()
    assert resource.endpoints["GET"].internal is False


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        ({"db": "select 1"}, "health('/healthz'): check 'db' is 'select 1', not a callable"),
        ({"": lambda: True}, "health('/healthz'): check name '' is not a non-empty string"),
        ([("db", lambda: True)], "health('/healthz'): checks must map names to callables"),
    ],
)
def test_bad_checks_are_refused_at_registration(
    server: Server, checks: object, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        server.health(checks=checks)  # type: ignore[arg-type]
    assert server.routes() == []


def test_a_path_taken_is_refused(server: Server) -> None:
    server.health()
    with pytest.raises(ValueError, match="'GET /healthz' is already registered"):
        server.health()
