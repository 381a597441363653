"""Route names and URL building: `server.url_for` and `request['url_for']`.

A URL built for a route must come back to that route with the same parameter values, through a
real WSGI call (the path percent-decoded into PATH_INFO as a server does), for every converter.
"""

from __future__ import annotations

import datetime
import functools
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from microwsgi import Server


def echo(request: dict[str, Any]) -> dict[str, Any]:
    """The parameters as repr()s, so types survive the JSON trip."""
    return {key: repr(value) for key, value in request["params"].items()}


def reached(server: Any, url: str) -> dict[str, Any]:
    answer = webtest.TestApp(server).get(url)
    return answer.json  # type: ignore[no-any-return]


# -- building -------------------------------------------------------------------------------


def test_default_name_is_the_handler_name(server: Server) -> None:
    @server.register("GET /hello/:name")
    def hello(request: dict[str, Any]) -> str:
        return "hi"

    # The route name is positional-only, so a parameter may be called `name`.
    assert server.url_for("hello", name="ada") == "/hello/ada"


def test_explicit_names_and_shortcuts(server: Server) -> None:
    server.register_handler("GET /notes", echo, name="notes")
    server.post("/notes", name="create_note")(echo)
    server.get("/notes/:id<int>", name="note")(echo)
    assert server.url_for("notes") == "/notes"
    assert server.url_for("create_note") == "/notes"
    assert server.url_for("note", id=7) == "/notes/7"
    with pytest.raises(LookupError, match="no route is named 'echo'"):
        server.url_for("echo")  # a name given replaces the default one


def test_extra_arguments_make_the_query_in_the_order_given(server: Server) -> None:
    server.get("/notes/:id<int>", name="note")(echo)
    url = server.url_for("note", id=3, zeta="z", alpha="a b&c=d", empty="", none=None)
    assert url == "/notes/3?zeta=z&alpha=a+b%26c%3Dd&empty="
    assert server.url_for("note", id=3, tag=["x", "y"]) == "/notes/3?tag=x&tag=y"
    assert server.url_for("note", id=3, q="café") == "/notes/3?q=caf%C3%A9"

    @server.get("/search/:id<int>")
    def search(request: dict[str, Any]) -> Any:
        return {"q": request["query"].get("q"), "tags": request["query"].getlist("tag")}

    url = server.url_for("search", id=1, q="a b&c=d", tag=["x", "é"])
    assert reached(server, url) == {"q": "a b&c=d", "tags": ["x", "é"]}


def test_static_segments_are_percent_encoded(server: Server) -> None:
    server.get("/café/100%/:x", name="odd")(echo)
    url = server.url_for("odd", x="y")
    assert url == "/caf%C3%A9/100%25/y"
    assert reached(server, url) == {"x": "'y'"}


# -- round trips through the router ---------------------------------------------------------

UUID = uuid.UUID("0b7e3b5c-2f6a-4c1e-9d1a-8f1e2d3c4b5a")
ROUND_TRIPS = [
    ("/i/:v<int>", 0, "/i/0"),
    ("/i/:v<int>", 42, "/i/42"),
    ("/i/:v<int>", -7, "/i/-7"),
    ("/i/:v<int>", 10**30, "/i/" + str(10**30)),
    ("/i/:v<int>", "12", "/i/12"),  # text that is a valid <int> segment
    ("/f/:v<float>", 1.5, "/f/1.5"),
    ("/f/:v<float>", -0.25, "/f/-0.25"),
    ("/f/:v<float>", 1e-05, "/f/1e-05"),
    ("/f/:v<float>", 1e16, "/f/1e+16"),  # '+' is a sub-delim: it may stand in a segment
    ("/f/:v<float>", 3, "/f/3"),
    ("/u/:v<uuid>", UUID, f"/u/{UUID}"),
    ("/u/:v<uuid>", str(UUID).upper(), f"/u/{str(UUID).upper()}"),
    ("/s/:v", "plain", "/s/plain"),
    ("/s/:v", "a b", "/s/a%20b"),
    ("/s/:v", "100%", "/s/100%25"),
    ("/s/:v", "%2F", "/s/%252F"),
    ("/s/:v", "café", "/s/caf%C3%A9"),
    ("/s/:v", "日本", "/s/%E6%97%A5%E6%9C%AC"),
    ("/s/:v", "a+b", "/s/a+b"),
    ("/s/:v", "?#[]", "/s/%3F%23%5B%5D"),
    ("/s/:v", "!$&'()*,;=:@", "/s/!$&'()*,;=:@"),
    ("/s/:v", "😀", "/s/%F0%9F%98%80"),
    ("/r/*v", "a/b/c.txt", "/r/a/b/c.txt"),
    ("/r/*v", "dir with space/é.txt", "/r/dir%20with%20space/%C3%A9.txt"),
    ("/r/*v", "", "/r/"),
    ("/r/*v", "trailing/", "/r/trailing/"),
]


@pytest.mark.parametrize(("pattern", "value", "url"), ROUND_TRIPS)
def test_url_for_round_trips_through_the_router(pattern: str, value: Any, url: str) -> None:
    server = Server()
    server.get(pattern, name="target")(echo)
    built = server.url_for("target", v=value)
    assert built == url
    back = reached(server, built)["v"]
    if pattern.startswith("/i/"):
        assert back == repr(int(value))
    elif pattern.startswith("/f/"):
        assert back == repr(float(value))
    elif pattern.startswith("/u/"):
        assert back == repr(uuid.UUID(str(value)))
    else:
        assert back == repr(value)


def test_custom_converter_round_trip(server: Server) -> None:
    server.converter(
        "date", r"\d{4}-\d{2}-\d{2}", datetime.date.fromisoformat, datetime.date.isoformat
    )
    server.converter("hex", "[0-9a-f]+", lambda text: int(text, 16), lambda n: format(n, "x"))
    server.get("/day/:d<date>/:n<hex>", name="day")(echo)
    url = server.url_for("day", d=datetime.date(2024, 2, 29), n=255)
    assert url == "/day/2024-02-29/ff"
    assert reached(server, url) == {"d": repr(datetime.date(2024, 2, 29)), "n": "255"}


SEGMENT_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda text: "/" not in text
)


@settings(max_examples=200, deadline=None)
@given(value=SEGMENT_TEXT, rest=st.lists(SEGMENT_TEXT, max_size=3).map("/".join))
def test_any_text_round_trips(value: str, rest: str) -> None:
    server = Server()
    server.get("/p/:value/*rest", name="target")(
        lambda request: {key: val for key, val in request["params"].items()}
    )
    url = server.url_for("target", value=value, rest=rest)
    assert url.isascii()
    assert Client(server).get(url).json == {"value": value, "rest": rest}


@settings(max_examples=100, deadline=None)
@given(number=st.integers() | st.floats(allow_nan=False, allow_infinity=False))
def test_any_number_round_trips(number: float) -> None:
    server = Server()
    server.get("/n/:v<int>", name="int")(echo)
    server.get("/n/:v<float>", name="float")(echo)
    kind = "int" if isinstance(number, int) else "float"
    url = server.url_for(kind, v=number)
    assert Client(server).get(url).json == {"v": repr(number)}


# -- values that would not route back ---------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "problem"),
    [
        ("/s/:v", "a/b", "contains '/'"),
        ("/s/:v", "", "is empty"),
        ("/i/:v<int>", "abc", "not a <int> segment"),
        ("/i/:v<int>", 1.5, "not a <int> segment"),
        ("/i/:v<int>", True, "not a <int> segment"),
        ("/f/:v<float>", float("inf"), "not a <float> segment"),
        ("/f/:v<float>", float("nan"), "not a <float> segment"),
        ("/u/:v<uuid>", "not-a-uuid", "not a <uuid> segment"),
    ],
)
def test_a_value_the_route_would_not_match_is_refused(
    pattern: str, value: Any, problem: str
) -> None:
    server = Server()
    server.get(pattern, name="target")(echo)
    with pytest.raises(ValueError, match=re.escape(problem)) as info:
        server.url_for("target", v=value)
    assert "'v'" in str(info.value) and f"'GET {pattern}'" in str(info.value)


def test_to_url_must_give_text(server: Server) -> None:
    server.converter("weird", "[0-9]+", int, lambda value: value)
    server.get("/w/:v<weird>", name="w")(echo)
    with pytest.raises(ValueError, match="not text"):
        server.url_for("w", v=3)


# -- names: what is refused, what is ambiguous, what never raises -----------------------------


def test_unknown_name_is_a_lookup_error_naming_it(server: Server) -> None:
    server.get("/notes", name="list_notes")(echo)
    with pytest.raises(LookupError, match=r"no route is named 'list_note' \(did you mean "):
        server.url_for("list_note")
    with pytest.raises(LookupError, match=r"no route is named 'zzz'$"):
        server.url_for("zzz")


def test_missing_parameter_is_a_lookup_error_naming_it(server: Server) -> None:
    server.get("/u/:uid<int>/posts/:slug", name="post")(echo)
    with pytest.raises(LookupError, match=r"missing parameter 'slug' for 'GET /u/:uid<int>/"):
        server.url_for("post", uid=1)


def test_seed_style_reused_names_register_and_are_ambiguous_only_when_built(
    server: Server,
) -> None:
    # The seed's README defines two `handler`s and two `ping_handler`s.
    def handler(request: dict[str, Any]) -> str:
        return "one"

    server.register_handler("GET /one", handler)

    def handler(request: dict[str, Any]) -> str:  # type: ignore[no-redef]
        return "two"

    server.register_handler("POST /two/:id", handler)
    assert webtest.TestApp(server).get("/one").text == "one"
    with pytest.raises(LookupError) as info:
        server.url_for("handler")
    message = str(info.value)
    assert "'GET /one'" in message and "'POST /two/:id'" in message and "name=" in message


def test_one_handler_on_several_verbs_of_one_path_is_one_name(server: Server) -> None:
    for verb in ("GET", "PUT", "DELETE"):
        server.register_handler(f"{verb} /notes/:id<int>", echo)
    assert server.url_for("echo", id=1) == "/notes/1"
    server.get("/notes/:id<int>/x", name="given")(echo)
    server.post("/notes/:id<int>/x", name="given")(echo)  # same pattern: same name is fine
    assert server.url_for("given", id=2) == "/notes/2/x"


def test_a_name_given_to_another_pattern_is_refused_naming_both(server: Server) -> None:
    server.get("/a", name="thing")(echo)
    with pytest.raises(ValueError) as info:
        server.post("/b", name="thing")  # at the decorator line
    message = str(info.value)
    assert "'POST /b'" in message and "'GET /a'" in message and "'thing'" in message
    with pytest.raises(ValueError, match="already given to 'GET /a'"):
        server.register_handler("POST /b", echo, name="thing")
    # Nothing was registered by the refused calls.
    webtest.TestApp(server).post("/b", status=404)


def test_a_name_given_wins_over_default_names(server: Server) -> None:
    def notes(request: dict[str, Any]) -> str:
        return "default"

    server.get("/notes")(notes)
    server.get("/v2/notes", name="notes")(echo)  # never a conflict with a default name
    server.get("/v3/notes")(notes)
    assert server.url_for("notes") == "/v2/notes"


@pytest.mark.parametrize("name", ["", 3, ("a",)])
def test_a_name_must_be_text(server: Server, name: Any) -> None:
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        server.get("/x", name=name)(echo)


def test_handlers_without_a_name_have_no_default_name(server: Server) -> None:
    class Callable:
        def __call__(self, request: dict[str, Any]) -> str:
            return "instance"

    server.register_handler("GET /p/:id", functools.partial(lambda extra, request: extra, "x"))
    server.register_handler("GET /c", Callable())
    server.register_handler("GET /named/:id", functools.partial(echo), name="named")
    assert server.url_for("named", id="z") == "/named/z"
    with pytest.raises(LookupError, match="no route is named 'partial'"):
        server.url_for("partial")


def test_group_routes_keep_their_names_and_get_the_prefix(server: Server) -> None:
    v1 = server.group("/api").group("/v1")
    v2 = server.group("/api").group("/v2")

    def list_notes(request: dict[str, Any]) -> str:
        return "notes"

    v1.get("/notes")(list_notes)
    v2.get("/notes", name="v2_notes")(list_notes)
    v1.get("/users/:id<int>", name="user")(echo)
    assert server.url_for("user", id=5) == "/api/v1/users/5"
    assert server.url_for("v2_notes") == "/api/v2/notes"
    assert server.url_for("list_notes") == "/api/v1/notes"  # v2's has a name of its own


def test_static_routes_are_named_static(server: Server, tmp_path: Path) -> None:
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site é.css").write_text("body {}")
    server.static("/static", str(tmp_path))
    server.static("/assets/", str(tmp_path), name="assets")
    url = server.url_for("static", path="css/site é.css")
    assert url == "/static/css/site%20%C3%A9.css"
    assert webtest.TestApp(server).get(url).text == "body {}"
    assert server.url_for("assets", path="css/x") == "/assets/css/x"


# -- request['url_for']: links that stay right when the app is mounted ----------------------


def linking_server() -> Server:
    server = Server()

    @server.get("/notes/:id<int>")
    def note(request: dict[str, Any]) -> dict[str, Any]:
        return {"id": request["params"]["id"], "self": request["url_for"]("note", id=7, x="y")}

    @server.get("/files/*path", name="file")
    def file(request: dict[str, Any]) -> dict[str, Any]:
        return {"path": request["params"]["path"]}

    return server


def test_request_url_for_at_the_root() -> None:
    app = webtest.TestApp(linking_server())
    assert app.get("/notes/1").json == {"id": 1, "self": "/notes/7?x=y"}


def test_request_url_for_under_dispatcher_middleware() -> None:
    def outer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"outer"]

    app = webtest.TestApp(DispatcherMiddleware(outer, {"/mounted": linking_server()}))
    link = app.get("/mounted/notes/1").json["self"]
    assert link == "/mounted/notes/7?x=y"
    assert app.get(link).json["id"] == 7  # the link works from outside


def test_request_url_for_under_a_non_ascii_mount_point() -> None:
    def outer(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"outer"]

    mount = "/café".encode().decode("latin-1")  # PEP 3333: the raw bytes as latin-1
    app = webtest.TestApp(DispatcherMiddleware(outer, {mount: linking_server()}))
    link = app.get("/caf%C3%A9/notes/1").json["self"]
    assert link == "/caf%C3%A9/notes/7?x=y"
    assert app.get(link).json["id"] == 7


def test_request_url_for_inside_server_mount() -> None:
    outer = Server()
    inner = linking_server()
    outer.mount("/inner", inner)
    app = webtest.TestApp(outer)
    assert app.get("/inner/notes/1").json["self"] == "/inner/notes/7?x=y"
    # The outer server's own url_for knows nothing of the inner app's names.
    with pytest.raises(LookupError):
        outer.url_for("note", id=1)
