"""The seed's middleware model: `mw(next) -> handler`, per route and before every route.

Covers order (route lists, before_all/beforeAll, both together), registration order
independence, chains built once, short-circuiting, and errors reaching middleware as values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import webtest

from microwsgi import Server, abort

Handler = Callable[[dict[str, Any]], Any]


def recorder(log: list[str], name: str) -> Callable[[Handler], Handler]:
    """A middleware that records entering and leaving, around `next`."""

    def middleware(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            log.append(f"{name}>")
            answer = next_handler(request)
            log.append(f"<{name}")
            return answer

        return handler

    middleware.__name__ = name
    return middleware


def test_single_middleware_function(server: Server, app: webtest.TestApp) -> None:
    log: list[str] = []

    @server.register("GET /x", recorder(log, "only"))
    def x(request: dict[str, Any]) -> str:
        log.append("handler")
        return "x"

    assert app.get("/x").text == "x"
    assert log == ["only>", "handler", "<only"]


@pytest.mark.parametrize("container", [list, tuple])
def test_list_runs_first_to_last(server: Server, app: webtest.TestApp, container: type) -> None:
    log: list[str] = []
    chain = container([recorder(log, "a"), recorder(log, "b"), recorder(log, "c")])

    @server.register("GET /x", chain)
    def x(request: dict[str, Any]) -> str:
        log.append("handler")
        return "x"

    app.get("/x")
    assert log == ["a>", "b>", "c>", "handler", "<c", "<b", "<a"]


def test_middleware_applies_only_to_its_route(server: Server, app: webtest.TestApp) -> None:
    log: list[str] = []
    server.register_handler("GET /with", lambda request: "w", recorder(log, "m"))
    server.register_handler("GET /without", lambda request: "wo")
    app.get("/without")
    assert log == []
    app.get("/with")
    assert log == ["m>", "<m"]


@pytest.mark.parametrize("before_all_first", [True, False])
def test_before_all_is_outermost_in_registration_order(before_all_first: bool) -> None:
    server = Server()
    log: list[str] = []

    def add_before_all() -> None:
        server.before_all()(recorder(log, "b1"))  # decorator form, as @server.before_all()
        server.beforeAll()(recorder(log, "b2"))  # the seed's spelling
        server.before_all(recorder(log, "b3"))  # direct call

    def add_route() -> None:
        @server.register("GET /x", [recorder(log, "r1"), recorder(log, "r2")])
        def x(request: dict[str, Any]) -> str:
            log.append("handler")
            return "x"

    if before_all_first:
        add_before_all()
        add_route()
    else:
        add_route()
        add_before_all()
    webtest.TestApp(server).get("/x")
    assert log == ["b1>", "b2>", "b3>", "r1>", "r2>", "handler", "<r2", "<r1", "<b3", "<b2", "<b1"]


def test_before_all_decorators_return_the_function(server: Server) -> None:
    def mw(next_handler: Handler) -> Handler:
        return next_handler

    assert server.before_all()(mw) is mw
    assert server.beforeAll()(mw) is mw
    assert server.before_all(mw) is mw
    with pytest.raises(ValueError, match="not callable"):
        server.before_all()("nope")  # type: ignore[arg-type]


def test_before_all_added_after_the_first_request_applies(
    server: Server, app: webtest.TestApp
) -> None:
    log: list[str] = []
    server.register_handler("GET /x", lambda request: "x")
    app.get("/x")
    server.before_all(recorder(log, "late"))
    app.get("/x")
    assert log == ["late>", "<late"]


def test_before_all_wraps_404_405_and_options(server: Server, app: webtest.TestApp) -> None:
    log: list[str] = []
    server.before_all(recorder(log, "all"))
    server.register_handler("GET /x", lambda request: "x")
    app.get("/missing", status=404)
    app.post("/x", status=405)
    app.options("/x", status=204)
    assert log == ["all>", "<all"] * 3


def test_chains_are_built_once() -> None:
    built: dict[str, int] = {"before": 0, "route": 0}

    def counting(kind: str) -> Callable[[Handler], Handler]:
        def factory(next_handler: Handler) -> Handler:
            built[kind] += 1
            return next_handler

        return factory

    server = Server()
    server.before_all(counting("before"))
    route_mw = counting("route")
    server.register_handler("GET /a", lambda request: "a", route_mw)
    server.register_handler("POST /a", lambda request: "a", route_mw)
    server.register_handler("GET /b/:id", lambda request: "b")
    # Each registration calls its factory once, to check that it returns a handler.
    assert built == {"before": 1, "route": 2}
    app = webtest.TestApp(server)
    app.get("/a")
    after_first = dict(built)
    assert after_first["route"] == 2 + 2  # one chain per (route, verb); HEAD reuses GET's
    for _ in range(30):
        app.get("/a")
        app.head("/a")
        app.post("/a")
        app.get("/b/1")
        app.get("/missing", status=404)
        app.put("/a", status=405)
        app.options("/a", status=204)
    assert built == after_first


def test_middleware_may_answer_without_calling_next(server: Server, app: webtest.TestApp) -> None:
    calls: list[str] = []

    def deny(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            if request["headers"].get("Authorization") != "Bearer ok":
                return {"error": "unauthorized"}, 401, {"WWW-Authenticate": "Bearer"}
            return next_handler(request)

        return handler

    @server.register("GET /private", deny)
    def private(request: dict[str, Any]) -> str:
        calls.append("handler")
        return "secret"

    response = app.get("/private", status=401)
    assert response.json == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert calls == []
    assert app.get("/private", headers={"Authorization": "Bearer ok"}).text == "secret"
    assert calls == ["handler"]


def test_before_all_may_answer_for_every_route(server: Server, app: webtest.TestApp) -> None:
    @server.before_all()
    def maintenance(next_handler: Handler) -> Handler:
        return lambda request: ("down for maintenance", 503)

    server.register_handler("GET /x", lambda request: "x")
    assert app.get("/x", status=503).text == "down for maintenance"
    assert app.get("/anything", status=503).text == "down for maintenance"


def test_errors_from_next_come_back_as_values() -> None:
    seen: list[Any] = []

    def observe(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            try:
                answer = next_handler(request)
            except Exception as exc:  # pragma: no cover - the point is that it never raises
                seen.append(("raised", exc))
                raise
            seen.append(answer)
            return answer

        return handler

    server = Server()
    server.before_all(observe)

    @server.register("GET /boom")
    def boom(request: dict[str, Any]) -> Any:
        raise RuntimeError("hidden detail")

    @server.register("GET /gone")
    def gone(request: dict[str, Any]) -> Any:
        abort(410, "it is gone")

    app = webtest.TestApp(server)
    app.get("/boom", status=500, expect_errors=True)
    app.get("/gone", status=410)
    app.get("/nothing", status=404)
    assert all(isinstance(answer, tuple) for answer in seen), seen
    statuses = [answer[1] for answer in seen]
    assert statuses == [500, 410, 404]
    assert seen[0][0]["status"] == 500
    assert "hidden detail" not in repr(seen[0][0])
    assert seen[1][0]["message"] == "it is gone"


def test_middleware_may_replace_an_error_answer(server: Server, app: webtest.TestApp) -> None:
    def soften(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            answer = next_handler(request)
            if isinstance(answer, tuple) and answer[1] >= 500:
                return {"degraded": True}, 200
            return answer

        return handler

    @server.register("GET /flaky", soften)
    def flaky(request: dict[str, Any]) -> Any:
        raise ValueError("backend down")

    assert app.get("/flaky", expect_errors=True).json == {"degraded": True}


def test_inner_middleware_error_reaches_outer_middleware(
    server: Server, app: webtest.TestApp
) -> None:
    seen: list[Any] = []

    def outer(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            answer = next_handler(request)
            seen.append(answer[1])
            return answer

        return handler

    def inner(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            abort(403, "inner says no")

        return handler

    server.register_handler("GET /x", lambda request: "x", [outer, inner])
    assert app.get("/x", status=403).json["message"] == "inner says no"
    assert seen == [403]


def test_middleware_may_add_keys_and_change_answers(server: Server, app: webtest.TestApp) -> None:
    def user(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            request["user"] = {"name": request["query"].get("as", "guest")}
            answer = next_handler(request)
            answer["served_by"] = "mw"
            return answer

        return handler

    server.register_handler("GET /me", lambda request: {"user": request["user"]["name"]}, user)
    assert app.get("/me?as=ada").json == {"user": "ada", "served_by": "mw"}


def test_factory_returning_a_non_callable_when_compiled_is_reported(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(next_handler: Handler) -> Any:
        calls.append(next_handler)
        # A handler when checked at registration, None when the chains are built.
        return next_handler if len(calls) == 1 else None

    server.register_handler("GET /x", lambda request: "x", broken)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = webtest.TestApp(server).get("/x", status=500, expect_errors=True)
    assert "instead of a handler" not in response.text  # nothing internal reaches the client
    assert "instead of a handler" in caplog.text
