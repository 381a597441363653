"""Typed parameters (`:name<int>`, `<float>`, `<uuid>`, `server.converter`) and precedence.

Precedence, position by position: a static segment, then typed parameters in registration
order, then the untyped `:name`, then `*rest`; applied among the routes that have the request's
verb. A 405 comes only when routes match the path and none has the verb, its `Allow` listing
the verbs of every route that matches.
"""

from __future__ import annotations

import datetime
import logging
import re
import uuid
from typing import Any

import pytest
import webtest

from microwsgi import Server
from microwsgi.routing.converters import Converter
from microwsgi.routing.router import Router


def describe(request: dict[str, Any]) -> dict[str, Any]:
    """What reached the handler: its route, and each parameter's type and value."""
    return {
        "route": request["route"],
        "params": {key: [type(v).__name__, str(v)] for key, v in request["params"].items()},
    }


def route(server: Server, spec: str) -> None:
    def handler(request: dict[str, Any]) -> dict[str, Any]:
        request["route"] = spec
        return describe(request)

    server.register_handler(spec, handler)


def allow_set(value: str) -> set[str]:
    return {verb.strip() for verb in value.split(",")}


# -- the precedence table -------------------------------------------------------------------

UUID = "0b7e3b5c-2f6a-4c1e-9d1a-8f1e2d3c4b5a"
PRECEDENCE_ROUTES = [
    "GET /items/new",
    "GET /items/:id<int>",
    "GET /items/:price<float>",
    "GET /items/:key<uuid>",
    "GET /items/:slug",
    "GET /items/*rest",
]
PRECEDENCE_TABLE = [
    ("/items/new", "GET /items/new", {}),
    ("/items/7", "GET /items/:id<int>", {"id": ["int", "7"]}),
    ("/items/-7", "GET /items/:id<int>", {"id": ["int", "-7"]}),
    ("/items/007", "GET /items/:id<int>", {"id": ["int", "7"]}),
    ("/items/7.5", "GET /items/:price<float>", {"price": ["float", "7.5"]}),
    ("/items/1e3", "GET /items/:price<float>", {"price": ["float", "1000.0"]}),
    ("/items/" + UUID, "GET /items/:key<uuid>", {"key": ["UUID", UUID]}),
    ("/items/" + UUID.upper(), "GET /items/:key<uuid>", {"key": ["UUID", UUID]}),
    ("/items/abc", "GET /items/:slug", {"slug": ["str", "abc"]}),
    ("/items/7a", "GET /items/:slug", {"slug": ["str", "7a"]}),
    ("/items/%E4%B8%83", "GET /items/:slug", {"slug": ["str", "七"]}),
    ("/items/%D9%A3", "GET /items/:slug", {"slug": ["str", "٣"]}),  # not an ASCII digit
    ("/items/1e999", "GET /items/:slug", {"slug": ["str", "1e999"]}),  # not a finite float
    ("/items/" + "9" * 5000, "GET /items/:slug", {"slug": ["str", "9" * 5000]}),  # int() refuses
    ("/items/new/x", "GET /items/*rest", {"rest": ["str", "new/x"]}),
    ("/items/7/x", "GET /items/*rest", {"rest": ["str", "7/x"]}),
    ("/items/", "GET /items/*rest", {"rest": ["str", ""]}),
]


@pytest.mark.parametrize("order", ["as listed", "reversed"])
@pytest.mark.parametrize(("url", "reached", "params"), PRECEDENCE_TABLE)
def test_precedence_table(order: str, url: str, reached: str, params: dict[str, Any]) -> None:
    server = Server()
    specs = PRECEDENCE_ROUTES if order == "as listed" else PRECEDENCE_ROUTES[::-1]
    # Typed routes keep their relative order (it decides between int and float for '7').
    typed = [spec for spec in PRECEDENCE_ROUTES if "<" in spec]
    others = [spec for spec in specs if "<" not in spec]
    for spec in (typed + others) if order == "as listed" else (others + typed):
        route(server, spec)
    answer = webtest.TestApp(server).get(url).json
    assert answer == {"route": reached, "params": params}


def test_typed_parameters_are_tried_in_registration_order(server: Server) -> None:
    route(server, "GET /n/:price<float>")
    route(server, "GET /n/:id<int>")
    app = webtest.TestApp(server)
    assert app.get("/n/7").json["route"] == "GET /n/:price<float>"
    assert app.get("/n/7").json["params"] == {"price": ["float", "7.0"]}


def test_the_issue_example_each_reaches_its_own(server: Server, app: webtest.TestApp) -> None:
    for spec in ("GET /items/new", "GET /items/:id<int>", "GET /items/:slug"):
        route(server, spec)
    assert app.get("/items/new").json["route"] == "GET /items/new"
    assert app.get("/items/7").json["route"] == "GET /items/:id<int>"
    assert app.get("/items/abc").json["route"] == "GET /items/:slug"


def test_typed_deeper_in_the_path_backtracks(server: Server, app: webtest.TestApp) -> None:
    route(server, "GET /u/:id<int>/posts")
    route(server, "GET /u/:name/photos")
    assert app.get("/u/5/posts").json["params"] == {"id": ["int", "5"]}
    # The int edge matches '5' but leads nowhere for 'photos': the untyped edge does.
    assert app.get("/u/5/photos").json["params"] == {"name": ["str", "5"]}
    assert app.get("/u/ada/photos").json["params"] == {"name": ["str", "ada"]}
    app.get("/u/ada/posts", status=404)


def test_a_segment_no_route_accepts_is_404_not_400_or_500(
    server: Server, app: webtest.TestApp
) -> None:
    route(server, "GET /orders/:id<int>")
    route(server, "GET /keys/:key<uuid>")
    route(server, "GET /prices/:p<float>")
    for url in (
        "/orders/abc",
        "/orders/7.5",
        "/orders/%20",
        "/orders/" + "9" * 5000,
        "/keys/not-a-uuid",
        "/keys/" + UUID[:-1],
        "/prices/nan",
        "/prices/inf",
        "/prices/1e999",
        "/prices/.5",
        "/orders/",
        "/orders//x",
    ):
        answer = app.get(url, status=404)
        assert answer.json["status"] == 404, url


def test_values_reach_the_handler_converted(server: Server, app: webtest.TestApp) -> None:
    seen: dict[str, Any] = {}

    @server.register("GET /t/:i<int>/:f<float>/:u<uuid>/:s")
    def typed(request: dict[str, Any]) -> str:
        seen.update(request["params"])
        return "ok"

    app.get(f"/t/42/2.5/{UUID}/caf%C3%A9")
    assert seen == {"i": 42, "f": 2.5, "u": uuid.UUID(UUID), "s": "café"}
    assert type(seen["i"]) is int and type(seen["f"]) is float


# -- converters of your own -----------------------------------------------------------------


def test_custom_converter(server: Server, app: webtest.TestApp) -> None:
    server.converter("date", r"\d{4}-\d{2}-\d{2}", datetime.date.fromisoformat)
    server.converter("upper", "[A-Z]+")
    seen: list[Any] = []

    @server.register("GET /day/:d<date>")
    def day(request: dict[str, Any]) -> str:
        seen.append(request["params"]["d"])
        return "day"

    @server.register("GET /day/:code<upper>")
    def code(request: dict[str, Any]) -> str:
        return "code " + request["params"]["code"]

    @server.register("GET /day/:other")
    def other(request: dict[str, Any]) -> str:
        return "other " + request["params"]["other"]

    assert app.get("/day/2024-02-29").text == "day"
    assert seen == [datetime.date(2024, 2, 29)]
    # The regex matches but to_python raises ValueError: not this route, the next one.
    assert app.get("/day/2024-02-30").text == "other 2024-02-30"
    assert app.get("/day/ABC").text == "code ABC"
    # Anchored: the pattern must match the whole segment.
    assert app.get("/day/ABCd").text == "other ABCd"
    assert app.get("/day/x2024-01-01").text == "other x2024-01-01"


def test_a_converter_that_raises_something_else_is_a_bug_answered_500(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(text: str) -> Any:
        raise TypeError("converter bug")

    server.converter("broken", "[a-z]+", broken)
    route(server, "GET /b/:x<broken>")
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        answer = app.get("/b/abc", status=500, expect_errors=True)
    assert answer.json["status"] == 500
    assert "TypeError: converter bug" in caplog.text  # logged, as any bug is
    assert app.get("/b/123", status=404)  # the regex refused it before to_python ran


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("bad name", "x"), "identifier"),
        (("", "x"), "identifier"),
        (("slug", "("), "not a valid regex"),
        (("slug", 42), "regex string"),
        (("slug", "x", "not callable"), "to_python"),
        (("slug", "x", str, None), "to_url"),
        (("int", "[0-9]+"), "already defined"),
        (("uuid", ".+"), "already defined"),
    ],
)
def test_bad_converter_is_refused_naming_it(args: tuple[Any, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)) as info:
        Server().converter(*args)
    assert repr(args[0]) in str(info.value)


def test_a_converter_may_be_defined_once_per_server() -> None:
    one, two = Server(), Server()
    one.converter("slug", "[a-z-]+")
    two.converter("slug", "[a-z0-9-]+")  # each server has its own types
    with pytest.raises(ValueError, match="already defined"):
        one.converter("slug", ".+")
    with pytest.raises(ValueError, match="unknown parameter type 'slug'"):
        Server().register("GET /x/:s<slug>")


# -- registration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("GET /x/:id<nope>", "unknown parameter type 'nope'"),
        ("GET /x/:id<>", "type name that is a Python identifier"),
        ("GET /x/:id<in t>", "exactly one space"),
        ("GET /x/:id<1nt>", "type name that is a Python identifier"),
        ("GET /x/:<int>", "needs a name"),
        ("GET /x/:id<int", "needs a name"),
        ("GET /x/*rest<int>", "cannot have a type"),
        ("GET /x/:id<int>/:id<float>", "appears twice"),
        ("GET /x/:id<int>x", "needs a name"),
    ],
)
def test_bad_typed_spec_is_refused_naming_spec_and_problem(spec: str, problem: str) -> None:
    server = Server()
    with pytest.raises(ValueError) as info:
        server.register(spec)  # at the decorator line
    assert repr(spec) in str(info.value)
    assert problem in str(info.value)
    with pytest.raises(ValueError, match=re.escape(problem)):
        server.register_handler(spec, describe)


def test_unknown_type_lists_the_known_ones() -> None:
    server = Server()
    server.converter("slug", "[a-z-]+")
    with pytest.raises(ValueError, match=r"known: float, int, slug, uuid"):
        server.register_handler("GET /x/:id<integer>", describe)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("GET /a/:x<int>", "POST /a/:y<int>"),
        ("GET /a/:x<int>/b", "GET /a/:y<int>/c"),
        ("GET /a/:x<uuid>/b", "DELETE /a/:y<uuid>"),
    ],
)
def test_same_type_with_another_name_at_one_position_is_refused(first: str, second: str) -> None:
    server = Server()
    server.register_handler(first, describe)
    with pytest.raises(ValueError, match="conflicts") as info:
        server.register_handler(second, describe)
    assert repr(second) in str(info.value)


def test_different_types_may_use_different_names_at_one_position(server: Server) -> None:
    for spec in (
        "GET /a/:id<int>",
        "GET /a/:price<float>",
        "GET /a/:key<uuid>",
        "GET /a/:slug",
        "POST /a/:id<int>/x",  # the same type keeps its name across verbs and depths
        "GET /a/:slug/y",
    ):
        server.register_handler(spec, describe)
    # An untyped ':id' is another type than ':id<int>', but ':slug' holds the untyped place.
    with pytest.raises(ValueError, match="conflicts with ':slug'"):
        server.register_handler("GET /a/:id/z", describe)


def test_same_typed_pattern_twice_is_refused(server: Server) -> None:
    server.register_handler("GET /a/:id<int>", describe)
    with pytest.raises(ValueError, match="already registered"):
        server.register_handler("GET /a/:id<int>", describe)
    with pytest.raises(ValueError, match="already registered"):
        server.register_handler("GET /a/:other<int>", describe)


# -- precedence among the routes that have the verb -----------------------------------------


@pytest.fixture
def verbs_app(server: Server) -> webtest.TestApp:
    route(server, "GET /items/:id<int>")
    route(server, "POST /items/:slug")
    route(server, "GET /items/new")
    route(server, "DELETE /items/new")
    return webtest.TestApp(server)


VERB_TABLE = [
    ("POST", "/items/7", 200, "POST /items/:slug", None),
    ("GET", "/items/7", 200, "GET /items/:id<int>", None),
    ("HEAD", "/items/7", 200, None, None),
    ("GET", "/items/new", 200, "GET /items/new", None),
    ("DELETE", "/items/new", 200, "DELETE /items/new", None),
    # The static pattern has no POST: the parameter route that has it takes the request.
    ("POST", "/items/new", 200, "POST /items/:slug", None),
    ("GET", "/items/abc", 405, None, {"POST", "OPTIONS"}),
    ("DELETE", "/items/abc", 405, None, {"POST", "OPTIONS"}),
    ("DELETE", "/items/7", 405, None, {"GET", "HEAD", "POST", "OPTIONS"}),
    ("PUT", "/items/new", 405, None, {"GET", "HEAD", "DELETE", "POST", "OPTIONS"}),
    ("OPTIONS", "/items/7", 204, None, {"GET", "HEAD", "POST", "OPTIONS"}),
    ("OPTIONS", "/items/abc", 204, None, {"POST", "OPTIONS"}),
    ("OPTIONS", "/items/new", 204, None, {"GET", "HEAD", "DELETE", "POST", "OPTIONS"}),
    ("GET", "/items", 404, None, None),
    ("POST", "/items/", 404, None, None),
    ("GET", "/items/7/x", 404, None, None),
]


@pytest.mark.parametrize(("verb", "url", "status", "reached", "allow"), VERB_TABLE)
def test_precedence_is_applied_among_routes_with_the_verb(
    verbs_app: webtest.TestApp,
    verb: str,
    url: str,
    status: int,
    reached: str | None,
    allow: set[str] | None,
) -> None:
    answer = verbs_app.request(url, method=verb, status=status)
    if reached is not None:
        assert answer.json["route"] == reached
    if allow is not None:
        assert allow_set(answer.headers["Allow"]) == allow
    if status == 405:
        assert answer.json["error"] == "Method Not Allowed"


def test_star_route_has_every_verb_in_precedence(server: Server, app: webtest.TestApp) -> None:
    route(server, "* /f/:id<int>")
    route(server, "GET /f/:name")
    route(server, "POST /f/x")
    assert app.get("/f/1").json["route"] == "* /f/:id<int>"
    assert app.get("/f/x").json["route"] == "GET /f/:name"
    assert app.put("/f/1").json["route"] == "* /f/:id<int>"
    assert allow_set(app.put("/f/x", status=405).headers["Allow"]) == {
        "GET",
        "HEAD",
        "POST",
        "OPTIONS",
    }


def test_an_explicit_options_route_elsewhere_on_the_path_wins(
    server: Server, app: webtest.TestApp
) -> None:
    route(server, "GET /o/:id<int>")
    route(server, "OPTIONS /o/:any")
    assert app.options("/o/1").json["route"] == "OPTIONS /o/:any"


def test_mounted_app_takes_verbs_its_siblings_lack(server: Server, app: webtest.TestApp) -> None:
    inner = Server()
    route(inner, "* /*rest")
    server.mount("/legacy", inner)
    route(server, "GET /legacy/:id<int>")
    assert app.get("/legacy/7").json["route"] == "GET /legacy/:id<int>"
    assert app.delete("/legacy/7").json == {"route": "* /*rest", "params": {"rest": ["str", "7"]}}


def test_automatic_answers_for_several_patterns_are_built_once(server: Server) -> None:
    built = {"count": 0}

    def counting(next_handler: Any) -> Any:
        built["count"] += 1
        return next_handler

    server.before_all(counting)
    route(server, "GET /c/:id<int>")
    route(server, "POST /c/:slug")
    app = webtest.TestApp(server)
    app.get("/c/1")
    app.put("/c/1", status=405)  # the first 405 for this pair of patterns builds its answers
    after = built["count"]
    for _ in range(5):
        app.put("/c/1", status=405)
        app.options("/c/2", status=204)
        app.get("/c/abc", status=405)
    assert built["count"] == after


# -- the Router on its own ------------------------------------------------------------------


def test_router_find_all_yields_every_match_in_precedence_order() -> None:
    router: Router[str] = Router()
    for pattern in ("/a/:slug", "/a/*rest", "/a/b", "/a/:id<int>", "/:x/b", "/:x/:y<float>"):
        router.add(pattern, pattern)
    assert [target for target, _ in router.find_all("/a/b")] == [
        "/a/b",
        "/a/:slug",
        "/a/*rest",
        "/:x/b",
    ]
    assert list(router.find_all("/a/1")) == [
        ("/a/:id<int>", {"id": 1}),
        ("/a/:slug", {"slug": "1"}),
        ("/a/*rest", {"rest": "1"}),
        ("/:x/:y<float>", {"x": "a", "y": 1.0}),
    ]
    assert router.find("/a/1") == ("/a/:id<int>", {"id": 1})
    assert list(router.find_all("/zzz")) == []
    assert list(router.find_all("")) == []


def test_router_get_follows_the_edge_of_the_same_type() -> None:
    router: Router[str] = Router()
    router.add("/a/:id<int>/x", "int")
    router.add("/a/:slug/x", "untyped")
    assert router.get("/a/:n<int>/x") == "int"
    assert router.get("/a/:s/x") == "untyped"
    assert router.get("/a/:u<uuid>/x") is None
    assert sorted(router.resources()) == ["int", "untyped"]


def test_router_reads_converters_added_after_it_was_made() -> None:
    converters = {"hex": Converter("hex", "[0-9a-f]+", lambda text: int(text, 16))}
    router: Router[str] = Router(converters)
    converters["oct"] = Converter("oct", "[0-7]+", lambda text: int(text, 8))
    router.add("/h/:n<hex>", "hex")
    router.add("/o/:n<oct>", "oct")
    assert router.find("/h/ff") == ("hex", {"n": 255})
    assert router.find("/o/17") == ("oct", {"n": 15})
    with pytest.raises(ValueError, match="unknown parameter type 'int'"):
        router.add("/i/:n<int>", "int")  # only the types it was given
