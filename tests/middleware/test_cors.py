"""cors(...): preflights answered or refused, Access-Control-* headers on the answers, Vary."""

from __future__ import annotations

from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning

from microwsgi import HTTPError, Server
from microwsgi.middleware import cors

APP = "https://app.example"
EVIL = "https://evil.example"


def preflight(origin: str, method: str = "PUT", headers: str | None = None) -> dict[str, str]:
    out = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        out["Access-Control-Request-Headers"] = headers
    return out


def vary(res: webtest.TestResponse) -> set[str]:
    return {v.strip().lower() for v in res.headers.get("Vary", "").split(",") if v.strip()}


def cors_headers(res: webtest.TestResponse) -> dict[str, str]:
    return {k: v for k, v in res.headers.items() if k.lower().startswith("access-control-")}


class Calls:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def calls() -> Calls:
    return Calls()


def cors_app(calls: Calls, **options: Any) -> webtest.TestApp:
    """/items answers GET and PUT (with CORS per route via '*'); /boom raises a 404."""
    server = Server()
    policy = cors(**options)

    @server.register("* /items", policy)
    def items(request: dict[str, Any]) -> Any:
        calls.count += 1
        return {"verb": request["verb"]}

    @server.register("GET /boom", policy)
    def boom(request: dict[str, Any]) -> Any:
        raise HTTPError(404, "gone")

    @server.register("GET /varied", policy)
    def varied(request: dict[str, Any]) -> Any:
        return "x", 200, {"Vary": "Accept-Encoding"}

    return webtest.TestApp(server)


# --- CORS: preflight ---------------------------------------------------------------------------


def test_preflight_allowed(calls: Calls) -> None:
    app = cors_app(calls, origins=[APP], methods=["GET", "PUT"], headers=["X-Token"], max_age=600)
    res = app.options("/items", headers=preflight(APP, "PUT", "x-token"), status=204)
    assert cors_headers(res) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Allow-Headers": "x-token",
        "Access-Control-Max-Age": "600",
    }
    assert "origin" in vary(res)
    assert res.body == b""
    assert calls.count == 0  # answered by the middleware, not the handler


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (preflight(EVIL), "origin"),
        (preflight(APP, "DELETE"), "method"),
        (preflight(APP, "PUT", "X-Token, X-Admin"), "X-Admin"),
    ],
    ids=["origin", "method", "header"],
)
def test_preflight_refused_is_403_without_cors_headers(
    calls: Calls, headers: dict[str, str], reason: str
) -> None:
    app = cors_app(calls, origins=[APP], methods=["GET", "PUT"], headers=["X-Token"])
    res = app.options("/items", headers=headers, status=403)
    assert cors_headers(res) == {}
    assert reason in res.text
    assert "origin" in vary(res)
    assert calls.count == 0


def test_preflight_wildcards(calls: Calls) -> None:
    app = cors_app(calls, methods="*", headers="*", credentials=True)
    res = app.options("/items", headers=preflight(EVIL, "PURGE", "X-A, X-B"), status=204)
    # With credentials '*' is no wildcard on the wire: origin, method and headers are echoed.
    assert res.headers["Access-Control-Allow-Origin"] == EVIL
    assert res.headers["Access-Control-Allow-Methods"] == "PURGE"
    assert res.headers["Access-Control-Allow-Headers"] == "X-A, X-B"
    assert res.headers["Access-Control-Allow-Credentials"] == "true"
    assert vary(res) == {"origin", "access-control-request-headers"}


def test_plain_options_reaches_the_handler(calls: Calls) -> None:
    app = cors_app(calls, origins=[APP])
    res = app.options("/items", headers={"Origin": APP})
    assert res.json == {"verb": "OPTIONS"}
    assert res.headers["Access-Control-Allow-Origin"] == APP


# --- CORS: actual requests ---------------------------------------------------------------------


def test_allowed_origin(calls: Calls) -> None:
    app = cors_app(calls, origins=[APP], expose_headers=["X-Total", "X-Page"])
    res = app.get("/items", headers={"Origin": APP})
    assert res.json == {"verb": "GET"}
    assert cors_headers(res) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Expose-Headers": "X-Total, X-Page",
    }
    assert vary(res) == {"origin"}


def test_disallowed_origin_still_reaches_the_handler(calls: Calls) -> None:
    app = cors_app(calls, origins=[APP])
    res = app.put("/items", headers={"Origin": EVIL})
    assert res.json == {"verb": "PUT"}
    assert calls.count == 1
    assert cors_headers(res) == {}
    assert vary(res) == {"origin"}


def test_no_origin_header_still_varies(calls: Calls) -> None:
    # The same URL answers differently with an allowed Origin: caches must know.
    app = cors_app(calls, origins=[APP])
    res = app.get("/items")
    assert cors_headers(res) == {}
    assert vary(res) == {"origin"}


def test_any_origin_without_credentials_is_a_literal_star(calls: Calls) -> None:
    app = cors_app(calls)
    res = app.get("/items", headers={"Origin": EVIL})
    assert res.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in res.headers
    assert "Vary" not in app.get("/items").headers


def test_credentials_with_any_origin_echo_it(calls: Calls) -> None:
    app = cors_app(calls, origins="*", credentials=True)
    res = app.get("/items", headers={"Origin": APP})
    assert res.headers["Access-Control-Allow-Origin"] == APP
    assert res.headers["Access-Control-Allow-Credentials"] == "true"
    assert vary(res) == {"origin"}


def test_origin_predicate(calls: Calls) -> None:
    app = cors_app(calls, origins=lambda origin: origin.endswith(".example.org"))
    ok = app.get("/items", headers={"Origin": "https://a.example.org"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://a.example.org"
    assert "Access-Control-Allow-Origin" not in app.get("/items", headers={"Origin": EVIL}).headers


def test_error_answers_get_cors_headers(calls: Calls) -> None:
    # A browser can only read the error if the error carries CORS headers too.
    app = cors_app(calls, origins=[APP])
    res = app.get("/boom", headers={"Origin": APP}, status=404)
    assert res.json["message"] == "gone"
    assert res.headers["Access-Control-Allow-Origin"] == APP


def test_vary_is_merged(calls: Calls) -> None:
    res = cors_app(calls, origins=[APP]).get("/varied", headers={"Origin": APP})
    assert vary(res) == {"accept-encoding", "origin"}


def test_origin_must_look_like_an_origin() -> None:
    with pytest.raises(ValueError, match="CORS origin"):
        cors(origins=["app.example"])
    with pytest.raises(ValueError, match="CORS origin"):
        cors(origins=["https://app.example/"])


def test_before_all_answers_preflight_for_any_route() -> None:
    server = Server()
    server.before_all(cors(origins=[APP], methods=["GET", "POST"]))

    @server.register("GET /only-get")
    def only_get(request: dict[str, Any]) -> Any:
        return "x"

    app = webtest.TestApp(server)
    res = app.options("/only-get", headers=preflight(APP, "POST"), status=204)
    assert res.headers["Access-Control-Allow-Origin"] == APP
    res = app.get("/nowhere", headers={"Origin": APP}, status=404)
    assert res.headers["Access-Control-Allow-Origin"] == APP


def test_per_route_cors_answers_preflight_on_a_get_only_route() -> None:
    server = Server()

    @server.register("GET /only-get", cors(origins=[APP], headers=["X-Token"]))
    def only_get(request: dict[str, Any]) -> Any:
        return "x"

    app = webtest.TestApp(server)
    res = app.options("/only-get", headers=preflight(APP, "GET", "X-Token"), status=204)
    assert res.headers["Access-Control-Allow-Origin"] == APP
