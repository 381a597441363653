"""Route groups (`server.group(prefix, middleware)`) and the verb shortcuts on servers and groups.

Middleware order, outermost first: the server's before-all middleware, each enclosing group's
from the outermost group in, the route's own, then the handler. The automatic OPTIONS and 405
answers for a grouped path run behind the group's middleware.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import webtest

from microwsgi import Server
from microwsgi.middleware import cors

Handler = Any


def echo(request: dict[str, Any]) -> dict[str, Any]:
    return {"verb": request["verb"], "path": request["path"], "params": request["params"]}


class Trace:
    """Middleware that record the order they run in."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def mw(self, tag: str) -> Any:
        def middleware(next_handler: Handler) -> Handler:
            def handler(request: dict[str, Any]) -> Any:
                self.log.append(f"{tag}>")
                answer = next_handler(request)
                self.log.append(f"<{tag}")
                return answer

            return handler

        middleware.__name__ = tag
        return middleware


def stamp(value: str) -> Any:
    """Middleware adding an ``X-Stamp`` header, to see which answers run behind it."""

    def middleware(next_handler: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            from microwsgi import make_response

            response = make_response(next_handler(request), request)
            response.headers.add("X-Stamp", value)
            return response

        return handler

    return middleware


# -- prefixes -------------------------------------------------------------------------------


def test_group_routes_are_served_under_the_prefix(server: Server, app: webtest.TestApp) -> None:
    api = server.group("/api")

    @api.register("GET /notes")
    def notes(request: dict[str, Any]) -> Any:
        return echo(request)

    api.register_handler("POST /notes/:id", echo)
    assert app.get("/api/notes").json["path"] == "/api/notes"
    assert app.post("/api/notes/3").json["params"] == {"id": "3"}
    app.get("/notes", status=404)
    app.get("/api", status=404)


def test_groups_nest(server: Server, app: webtest.TestApp) -> None:
    api = server.group("/api")
    v1 = api.group("/v1")
    v2 = api.group("/v2")
    deep = v1.group("/admin")
    v1.get("/items")(echo)
    v2.get("/items")(lambda request: "v2")
    deep.delete("/users/:id<int>")(echo)
    assert app.get("/api/v1/items").json["path"] == "/api/v1/items"
    assert app.get("/api/v2/items").text == "v2"
    assert app.delete("/api/v1/admin/users/9").json["params"] == {"id": 9}
    assert (api.prefix, v1.prefix, deep.prefix) == ("/api", "/api/v1", "/api/v1/admin")


def test_root_and_empty_path_inside_a_group(server: Server, app: webtest.TestApp) -> None:
    api = server.group("/api")
    api.get("/")(lambda request: "with slash")
    api.get("")(lambda request: "the prefix itself")
    api.register_handler("POST ", lambda request: "posted")
    assert app.get("/api/").text == "with slash"
    assert app.get("/api").text == "the prefix itself"
    assert app.post("/api").text == "posted"


@pytest.mark.parametrize("prefix", ["", "/"])
def test_a_group_without_prefix_only_shares_middleware(prefix: str) -> None:
    server = Server()
    shared = server.group(prefix, stamp("shared"))
    shared.get("/a")(echo)
    server.get("/b")(echo)
    app = webtest.TestApp(server)
    assert app.get("/a").headers["X-Stamp"] == "shared"
    assert "X-Stamp" not in app.get("/b").headers


def test_prefix_with_parameters(server: Server, app: webtest.TestApp) -> None:
    user = server.group("/users/:uid<int>")
    user.get("/posts/:slug")(echo)
    user.get("")(echo)
    assert app.get("/users/7/posts/hello").json["params"] == {"uid": 7, "slug": "hello"}
    assert app.get("/users/7").json["params"] == {"uid": 7}
    app.get("/users/ada/posts/hello", status=404)
    with pytest.raises(ValueError, match="'uid' appears twice") as info:
        user.get("/:uid")
    assert "'GET /users/:uid<int>/:uid'" in str(info.value)


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("api", "must start with '/'"),
        ("/api/", "trailing '/'"),
        ("/files/*rest", "catch-all"),
        ("/a b", "exactly one space"),
        ("/a//b", "empty path segment"),
        ("/a:b", "inside"),
        ("/x/:id<nope>", "unknown parameter type 'nope'"),
    ],
)
def test_bad_prefix_is_refused_naming_it(prefix: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)) as info:
        Server().group(prefix)
    assert f"group {prefix!r}" in str(info.value)


def test_prefix_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="group prefix must be a path"):
        Server().group(None)  # type: ignore[arg-type]


def test_spec_errors_in_a_group_name_the_spec(server: Server) -> None:
    api = server.group("/api")
    with pytest.raises(ValueError, match=re.escape("route spec 'GET notes'")):
        api.register("GET notes")  # as written, at the decorator line
    with pytest.raises(ValueError, match="unknown verb"):
        api.register_handler("FETCH /x", echo)
    with pytest.raises(ValueError, match="exactly one space"):
        api.get("/a b")
    api.get("/x/:id")(echo)
    with pytest.raises(ValueError, match=re.escape("route 'GET /api/x/:id' is already registered")):
        api.get("/x/:id")(echo)
    server.register_handler("GET /api/y", echo)
    with pytest.raises(ValueError, match="already registered"):
        api.get("/y")(echo)  # the same route from outside the group
    with pytest.raises(ValueError, match="conflicts"):
        api.post("/x/:other")(echo)


def test_group_middleware_is_checked_when_the_group_is_made(server: Server) -> None:
    with pytest.raises(ValueError, match=r"group '/api': middleware 3 is not callable"):
        server.group("/api", [stamp("a"), 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"group '/api': middleware must be a function"):
        server.group("/api", "not middleware")  # type: ignore[arg-type]


# -- middleware order -----------------------------------------------------------------------


def test_nested_groups_middleware_order(server: Server, app: webtest.TestApp) -> None:
    trace = Trace()
    server.before_all(trace.mw("all1"))
    server.before_all(trace.mw("all2"))
    api = server.group("/api", trace.mw("api"))
    v1 = api.group("/v1", [trace.mw("v1a"), trace.mw("v1b")])
    admin = v1.group("/admin", trace.mw("admin"))

    @admin.get("/x", [trace.mw("route1"), trace.mw("route2")])
    def handler(request: dict[str, Any]) -> str:
        trace.log.append("handler")
        return "ok"

    assert app.get("/api/v1/admin/x").text == "ok"
    order = ["all1", "all2", "api", "v1a", "v1b", "admin", "route1", "route2"]
    assert trace.log == [f"{tag}>" for tag in order] + ["handler"] + [
        f"<{tag}" for tag in reversed(order)
    ]


def test_sibling_groups_do_not_share_middleware(server: Server, app: webtest.TestApp) -> None:
    api = server.group("/api", stamp("api"))
    api.group("/one", stamp("one")).get("/x")(echo)
    api.group("/two", stamp("two")).get("/x")(echo)
    server.get("/plain")(echo)
    # make_response keeps every X-Stamp: the innermost middleware adds its header first.
    assert app.get("/api/one/x").headers.getall("X-Stamp") == ["one", "api"]
    assert app.get("/api/two/x").headers.getall("X-Stamp") == ["two", "api"]
    assert app.get("/plain").headers.getall("X-Stamp") == []


# -- automatic answers ----------------------------------------------------------------------


def test_automatic_answers_of_a_grouped_path_run_behind_the_group(
    server: Server, app: webtest.TestApp
) -> None:
    api = server.group("/api", stamp("api"))
    api.get("/notes")(echo)
    api.post("/notes")(echo)
    head = app.head("/api/notes")
    assert head.headers["X-Stamp"] == "api" and head.body == b""
    options = app.options("/api/notes", status=204)
    assert options.headers["X-Stamp"] == "api"
    assert {v.strip() for v in options.headers["Allow"].split(",")} == {
        "GET",
        "HEAD",
        "POST",
        "OPTIONS",
    }
    refused = app.put("/api/notes", status=405)
    assert refused.headers["X-Stamp"] == "api"
    assert refused.json["error"] == "Method Not Allowed"
    # No route matches: a 404 belongs to no group, so only before-all middleware wraps it.
    missing = app.get("/api/nothing", status=404)
    assert "X-Stamp" not in missing.headers


def test_a_group_with_cors_answers_preflights(server: Server, app: webtest.TestApp) -> None:
    api = server.group("/api", cors(origins="https://app.example"))
    api.get("/notes")(echo)
    api.delete("/notes/:id<int>")(echo)
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "DELETE",
    }
    answer = app.options("/api/notes/4", headers=preflight, status=204)
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    got = app.get("/api/notes", headers={"Origin": "https://app.example"})
    assert got.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_a_path_shared_by_a_group_and_the_server_runs_behind_what_they_share(
    server: Server, app: webtest.TestApp
) -> None:
    server.before_all(stamp("all"))
    api = server.group("/api", [cors(origins="*"), stamp("api")])
    server.get("/api/mixed")(echo)
    api.post("/mixed")(echo)
    # The 405 runs behind before-all only: the group's stamp is not shared by both routes...
    refused = app.put("/api/mixed", status=405)
    assert refused.headers.getall("X-Stamp") == ["all"]
    assert {v.strip() for v in refused.headers["Allow"].split(",")} == {
        "GET",
        "HEAD",
        "POST",
        "OPTIONS",
    }
    # ...but the group's CORS middleware still answers the preflights for its route.
    preflight = {"Origin": "https://x.example", "Access-Control-Request-Method": "POST"}
    answer = app.options("/api/mixed", headers=preflight, status=204)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers.getall("X-Stamp") == ["all"]


# -- verb shortcuts -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_verb_shortcuts_equal_register(verb: str) -> None:
    server = Server()
    trace = Trace()
    shortcut = getattr(server, verb.lower())

    @shortcut("/x/:id<int>", trace.mw("route"))
    def handler(request: dict[str, Any]) -> Any:
        return echo(request)

    api = server.group("/api")
    getattr(api, verb.lower())("/y")(echo)
    app = webtest.TestApp(server)
    assert app.request("/x/5", method=verb).json == {
        "verb": verb,
        "path": "/x/5",
        "params": {"id": 5},
    }
    assert trace.log == ["route>", "<route"]
    assert app.request("/api/y", method=verb).json["path"] == "/api/y"
    with pytest.raises(ValueError, match="already registered"):
        server.register_handler(f"{verb} /x/:id<int>", echo)
    with pytest.raises(ValueError, match=re.escape(f"route spec '{verb} x'")):
        shortcut("x")


def test_verb_shortcuts_return_the_function_and_describe_themselves(server: Server) -> None:
    def handler(request: dict[str, Any]) -> str:
        return "x"

    assert server.get("/x")(handler) is handler
    assert server.group("/g").post("/x")(handler) is handler
    assert server.get.__name__ == "get"
    assert "register('GET ' + path" in (server.get.__doc__ or "")
    assert Server.delete is not None  # looked up on the class, without a server
