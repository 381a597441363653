"""Routing: the `VERB /path` grammar, parameters, catch-all, precedence, 404/405/HEAD/OPTIONS.

The first half drives `Server` through WebTest; the second half tests
`microwsgi.routing.router.Router` on its own (it knows nothing about verbs or handlers).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import webtest
from werkzeug.test import Client

from microwsgi import Server
from microwsgi.routing.router import Router
from microwsgi.routing.spec import parse_spec


def echo_params(request: dict[str, Any]) -> dict[str, Any]:
    return request["params"]


# -- the grammar ----------------------------------------------------------------------------

BAD_SPECS = [
    ("GET hello", "must start with '/'"),
    ("FETCH /x", "unknown verb"),
    ("get /x", "unknown verb"),
    (" /x", "unknown verb"),
    ("GET  /x", "exactly one space"),
    ("GET /x ", "exactly one space"),
    ("GET /a b", "exactly one space"),
    ("GET /a b/c d", "exactly one space"),
    ("", "empty"),
    ("   ", "empty"),
    ("GET", "exactly one space"),
    ("GET\t/x", "exactly one space"),
    ("GET /a\tb", "whitespace"),
    ("GET /a\nb", "whitespace"),
    ("GET /a:b", "inside"),
    ("GET /users/id:x", "inside"),
    ("GET /a/b*c", "inside"),
    ("GET /*rest/x", "last segment"),
    ("GET /files/*rest/:name", "last segment"),
    ("GET /a/:", "identifier"),
    ("GET /a/*", "identifier"),
    ("GET /a/:1x", "identifier"),
    ("GET /a/:x/:x", "appears twice"),
    ("GET /a/:x/*x", "appears twice"),
    ("GET /a//b", "empty path segment"),
    ("GET //", "empty path segment"),
    ("GET /a?b=1", "'?'"),
    ("GET /a#frag", "'#'"),
]


@pytest.mark.parametrize(("spec", "problem"), BAD_SPECS)
def test_bad_spec_is_refused_naming_spec_and_problem(spec: str, problem: str) -> None:
    server = Server()
    with pytest.raises(ValueError) as info:
        server.register(spec)  # refused at the decorator line, before any function exists
    assert repr(spec) in str(info.value)
    assert problem in str(info.value)
    with pytest.raises(ValueError, match="route spec"):
        server.register_handler(spec, echo_params)


@pytest.mark.parametrize("spec", [None, b"GET /x", 42, ("GET", "/x")])
def test_spec_that_is_not_a_string_is_refused(spec: Any) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        Server().register(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "* /x",
        "POST /x",
        "PUT /x",
        "PATCH /x",
        "DELETE /x",
        "HEAD /x",
        "OPTIONS /x",
        "GET /hello/",
        "GET /a/:b/c/*rest",
        "GET /café/ünïcode",
        "GET /a-b.c~d/e_f",
    ],
)
def test_good_specs_parse(spec: str) -> None:
    verb, path = parse_spec(spec)
    assert f"{verb} {path}" == spec


def test_duplicate_verb_and_pattern_is_refused(server: Server) -> None:
    server.register_handler("GET /x", echo_params)
    with pytest.raises(ValueError, match=r"'GET /x' is already registered"):
        server.register_handler("GET /x", echo_params)
    server.register_handler("GET /u/:id", echo_params)
    with pytest.raises(ValueError, match="already registered"):
        server.register_handler("GET /u/:id", echo_params)
    with pytest.raises(ValueError, match="already registered"):
        server.register_handler("GET /u/:other", echo_params)  # same pattern, renamed parameter
    server.register_handler("* /any", echo_params)
    with pytest.raises(ValueError, match="already registered"):
        server.register_handler("* /any", echo_params)
    # A different verb at the same pattern is fine.
    server.register_handler("POST /x", echo_params)


def test_conflicting_parameter_names_at_one_position_are_refused(server: Server) -> None:
    server.register_handler("GET /a/:x/b", echo_params)
    with pytest.raises(ValueError, match="conflicts"):
        server.register_handler("GET /a/:y/c", echo_params)


@pytest.mark.parametrize(
    ("first", "second"),
    [("GET /a/:x", "POST /a/:y"), ("GET /f/*path", "POST /f/*rest")],
)
def test_renamed_parameter_for_another_verb_is_refused(first: str, second: str) -> None:
    server = Server()
    server.register_handler(first, echo_params)
    with pytest.raises(ValueError, match=re.escape(repr(second))):
        server.register_handler(second, echo_params)


def test_root_route_is_allowed(server: Server, app: webtest.TestApp) -> None:
    assert parse_spec("GET /") == ("GET", "/")
    server.register_handler("GET /", lambda request: "home")
    assert app.get("/").text == "home"


def test_register_returns_the_function_and_register_handler_works(server: Server) -> None:
    def hello(request: dict[str, Any]) -> str:
        return "hi"

    assert server.register("GET /a")(hello) is hello
    server.register_handler("GET /b", hello)
    app = webtest.TestApp(server)
    assert app.get("/a").text == "hi"
    assert app.get("/b").text == "hi"


def test_non_callable_handler_or_middleware_is_refused(server: Server) -> None:
    with pytest.raises(ValueError, match="not callable"):
        server.register_handler("GET /x", "not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not callable"):
        server.register_handler("GET /y", echo_params, [echo_params, 3])  # type: ignore[list-item]


# -- parameters -----------------------------------------------------------------------------


def test_params_is_an_empty_dict_without_parameters(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /plain", echo_params)
    assert app.get("/plain").json == {}


def test_named_segments_become_params(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /users/:group/:channel", echo_params)
    assert app.get("/users/admins/general").json == {"group": "admins", "channel": "general"}


@pytest.mark.parametrize(
    ("url", "value"),
    [
        ("/hello/caf%C3%A9", "café"),
        ("/hello/%E6%97%A5%E6%9C%AC", "日本"),
        ("/hello/a%20b", "a b"),
        ("/hello/100%25", "100%"),  # decoded once, not twice
        ("/hello/%2525", "%25"),
        ("/hello/a+b", "a+b"),  # '+' means space only in query strings
    ],
)
def test_params_are_percent_decoded_as_utf8(
    server: Server, app: webtest.TestApp, url: str, value: str
) -> None:
    server.register_handler("GET /hello/:name", echo_params)
    assert app.get(url).json == {"name": value}


def test_non_ascii_path_info_is_read_as_utf8_bytes(server: Server, call_wsgi: Any) -> None:
    # PEP 3333: PATH_INFO carries the raw bytes decoded as latin-1.
    server.register_handler("GET /hello/:name", echo_params)
    raw = "/hello/café".encode().decode("latin-1")
    result = call_wsgi(server, "/", environ={"PATH_INFO": raw})
    assert result.code == 200
    assert b"".join(result.body).decode() == '{"name":"café"}'


def test_static_non_ascii_route_matches(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /café", lambda request: request["path"])
    assert app.get("/caf%C3%A9").text == "/café"


def test_catch_all_captures_the_rest_of_the_path(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /files/*path", echo_params)
    server.register_handler("GET /u/:id/*rest", echo_params)
    assert app.get("/files/a/b/c.txt").json == {"path": "a/b/c.txt"}
    assert app.get("/files/x").json == {"path": "x"}
    assert app.get("/files/").json == {"path": ""}
    assert app.get("/files/a%20b/%C3%A9").json == {"path": "a b/é"}
    assert app.get("/files", status=404)
    assert app.get("/u/7/x/y").json == {"id": "7", "rest": "x/y"}


def test_root_catch_all_leaves_other_routes_alone(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /*path", lambda request: "fallback " + request["params"]["path"])
    server.register_handler("GET /exact", lambda request: "exact")
    server.register_handler("GET /p/:x", lambda request: "param " + request["params"]["x"])
    assert app.get("/exact").text == "exact"
    assert app.get("/p/1").text == "param 1"
    assert app.get("/p/1/2").text == "fallback p/1/2"
    assert app.get("/anything/else").text == "fallback anything/else"
    assert app.get("/").text == "fallback "


def test_trailing_slash_is_a_different_route(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /hello", lambda request: "no slash")
    assert app.get("/hello").text == "no slash"
    assert app.get("/hello/", status=404)
    server.register_handler("GET /hello/", lambda request: "slash")
    assert app.get("/hello/").text == "slash"


# -- verbs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_star_verb_matches_every_method(server: Server, app: webtest.TestApp, verb: str) -> None:
    server.register_handler("* /ping", lambda request: request["verb"])
    response = app.request("/ping", method=verb)
    assert response.status_int == 200
    assert response.text == verb


def test_star_verb_matches_unknown_methods_and_head(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("* /ping", lambda request: request["verb"])
    # WebTest's lint refuses unknown methods, so this one goes through werkzeug's client.
    assert Client(server).open("/ping", method="PROPFIND").text == "PROPFIND"
    head = app.head("/ping")
    assert head.status_int == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == "4"


def test_explicit_verb_beats_star_at_the_same_path(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("* /x", lambda request: "any")
    server.register_handler("GET /x", lambda request: "get")
    assert app.get("/x").text == "get"
    assert app.post("/x").text == "any"
    assert app.delete("/x").text == "any"


# -- precedence -----------------------------------------------------------------------------


@pytest.mark.parametrize("static_first", [True, False])
def test_static_beats_parameter_whatever_the_order(static_first: bool) -> None:
    server = Server()
    routes = [
        ("GET /users/me", lambda request: "me"),
        ("GET /users/:id", lambda request: "id " + request["params"]["id"]),
        ("GET /users/me/posts", lambda request: "my posts"),
        ("GET /users/:id/posts", lambda request: "posts of " + request["params"]["id"]),
        ("GET /t/:a/x/:b", lambda request: "param-x"),
        ("GET /t/:a/:c/y", lambda request: "param-param"),
    ]
    for spec, handler in routes if static_first else reversed(routes):
        server.register_handler(spec, handler)
    app = webtest.TestApp(server)
    assert app.get("/users/me").text == "me"
    assert app.get("/users/42").text == "id 42"
    assert app.get("/users/me/posts").text == "my posts"
    assert app.get("/users/42/posts").text == "posts of 42"
    assert app.get("/t/1/x/2").text == "param-x"
    assert app.get("/t/1/x/y").text == "param-x"  # static 'x' wins at position 2
    assert app.get("/t/1/z/y").text == "param-param"


def test_backtracking_from_a_static_prefix_to_a_parameter(server: Server) -> None:
    server.register_handler("GET /a/b/d", lambda request: "static")
    server.register_handler("GET /a/:x/c", echo_params)
    server.register_handler("GET /t/b/:z/d", echo_params)
    server.register_handler("GET /t/:x/c", echo_params)
    server.register_handler("GET /k/b/:z", echo_params)
    server.register_handler("GET /k/*rest", echo_params)
    app = webtest.TestApp(server)
    assert app.get("/a/b/d").text == "static"
    assert app.get("/a/b/c").json == {"x": "b"}
    # Inside the tree: the static 'b' edge leads nowhere for /t/b/c, the parameter edge does.
    assert app.get("/t/b/c").json == {"x": "b"}
    assert app.get("/t/b/q/d").json == {"z": "q"}
    # A dead end after the static edge falls back to the catch-all, with no stale values.
    assert app.get("/k/b/c/d").json == {"rest": "b/c/d"}
    assert app.get("/k/b/c").json == {"z": "c"}


def test_parameter_never_matches_an_empty_segment(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /a/:x/b", echo_params)
    assert app.get("/a//b", status=404)


def test_two_servers_are_independent() -> None:
    one, two = Server(), Server()
    one.register_handler("GET /x", lambda request: "one")
    two.register_handler("GET /x", lambda request: "two")
    one.register_handler("GET /only-one", lambda request: "one")

    def shout(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            answer = next_handler(request)
            return answer.upper() if isinstance(answer, str) else answer

        return handler

    one.before_all(shout)

    @two.errorhandler(404)
    def not_found(request: dict[str, Any], error: Exception) -> str:
        return "two: not found"

    app_one, app_two = webtest.TestApp(one), webtest.TestApp(two)
    assert app_one.get("/x").text == "ONE"
    assert app_two.get("/x").text == "two"
    assert app_one.get("/only-one").text == "ONE"
    assert app_two.get("/only-one", status=404).text == "two: not found"
    assert app_one.get("/nothing", status=404).json["status"] == 404
    assert Server().routes() == []  # a third, fresh server sees none of theirs


def test_routes_added_after_the_first_request_are_served(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler("GET /first", lambda request: "first")
    assert app.get("/first").text == "first"
    server.register_handler("GET /later", lambda request: "later")
    assert app.get("/later").text == "later"
    assert app.get("/first").text == "first"


# -- 404, 405, HEAD, OPTIONS ----------------------------------------------------------------


def test_unknown_path_is_404_json(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /x", echo_params)
    response = app.get("/nope", status=404)
    assert response.content_type == "application/json"
    assert response.json == {
        "status": 404,
        "error": "Not Found",
        "message": response.json["message"],
    }
    assert "/nope" in response.json["message"]
    assert app.post("/nope", status=404)


def allow_set(value: str) -> set[str]:
    return {verb.strip() for verb in value.split(",")}


def test_known_path_wrong_method_is_405_with_allow(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /x", echo_params)
    server.register_handler("POST /x", echo_params)
    server.register_handler("DELETE /u/:id", echo_params)
    response = app.put("/x", status=405)
    assert allow_set(response.headers["Allow"]) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert response.json["status"] == 405
    assert response.json["error"] == "Method Not Allowed"
    response = app.get("/u/3", status=405)
    assert allow_set(response.headers["Allow"]) == {"DELETE", "OPTIONS"}
    assert app.head("/u/3", status=405).body == b""


def test_head_is_answered_by_get_without_body(server: Server, app: webtest.TestApp) -> None:
    calls: list[str] = []

    def page(request: dict[str, Any]) -> Any:
        calls.append(request["verb"])
        return {"message": "héllo"}, 200, {"X-Extra": "1"}

    server.register_handler("GET /page", page)
    get = app.get("/page")
    head = app.head("/page")
    assert calls == ["GET", "HEAD"]
    assert head.body == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.body))
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.headers["X-Extra"] == "1"


def test_explicit_head_route_beats_get(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /x", lambda request: "get")
    server.register_handler("HEAD /x", lambda request: ("", 200, {"X-Head": "yes"}))
    assert "X-Head" not in app.get("/x").headers
    assert app.head("/x").headers["X-Head"] == "yes"


def test_options_without_a_route_is_204_with_allow(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /x", echo_params)
    server.register_handler("PATCH /x", echo_params)
    response = app.options("/x", status=204)
    assert allow_set(response.headers["Allow"]) == {"GET", "HEAD", "PATCH", "OPTIONS"}
    assert response.body == b""
    assert "Content-Type" not in response.headers
    assert app.options("/unknown", status=404)


def test_explicit_options_route_wins(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /x", echo_params)
    server.register_handler("OPTIONS /x", lambda request: ("custom", 200, {"Allow": "GET"}))
    response = app.options("/x")
    assert response.text == "custom"
    assert response.headers["Allow"] == "GET"


# -- the Router on its own ------------------------------------------------------------------


def test_router_find_returns_resource_and_fresh_params() -> None:
    router: Router[str] = Router()
    router.add("/static/path", "static")
    router.add("/u/:id", "user")
    router.add("/f/*rest", "files")
    assert router.find("/static/path") == ("static", {})
    assert router.find("/u/9") == ("user", {"id": "9"})
    assert router.find("/f/a/b") == ("files", {"rest": "a/b"})
    assert router.find("/u/9/x") is None
    assert router.find("/nothing") is None
    assert router.find("") is None
    first = router.find("/u/1")
    assert first is not None
    first[1]["id"] = "changed"
    assert router.find("/u/1") == ("user", {"id": "1"})


def test_router_get_and_resources() -> None:
    router: Router[str] = Router()
    for pattern in ("/a", "/a/:x", "/a/:x/b", "/c/*rest"):
        router.add(pattern, pattern)
    assert router.get("/a/:x/b") == "/a/:x/b"
    assert router.get("/a/b") is None
    assert router.get("/c/*rest") == "/c/*rest"
    assert sorted(router.resources()) == ["/a", "/a/:x", "/a/:x/b", "/c/*rest"]


def test_router_refuses_duplicates_and_conflicts() -> None:
    router: Router[str] = Router()
    router.add("/a/:x/b", "one")
    with pytest.raises(ValueError, match="already registered"):
        router.add("/a/:x/b", "two")
    with pytest.raises(ValueError, match="conflicts"):
        router.add("/a/:y/c", "three")
    router.add("/s", "s")
    with pytest.raises(ValueError, match="already registered"):
        router.add("/s", "again")


def test_router_with_ten_thousand_routes_still_matches_each() -> None:
    router: Router[str] = Router()
    count = 10_000
    for i in range(count):
        router.add(f"/static/{i}", f"s{i}")
        router.add(f"/items{i}/:id", f"p{i}")
        router.add(f"/deep/{i}/:a/x/:b", f"d{i}")
    router.add("/deep/:n/:a/y/:b", "fallback")
    for i in range(count):
        assert router.find(f"/static/{i}") == (f"s{i}", {})
        assert router.find(f"/items{i}/v{i}") == (f"p{i}", {"id": f"v{i}"})
        assert router.find(f"/deep/{i}/A/x/B") == (f"d{i}", {"a": "A", "b": "B"})
    assert router.find(f"/static/{count}") is None
    assert router.find(f"/items{count}/v") is None
    assert router.find("/deep/5/A/y/B") == ("fallback", {"n": "5", "a": "A", "b": "B"})
