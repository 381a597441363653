"""request_id(...): a new ID or the client's own, in request['request_id'] and on the answer."""

from __future__ import annotations

import re
from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning

from microwsgi import Server
from microwsgi.middleware import request_id


@pytest.fixture
def id_app() -> webtest.TestApp:
    server = Server()

    def echo(request: dict[str, Any]) -> Any:
        return {"id": request["request_id"]}

    server.register_handler("GET /default", echo, request_id())
    server.register_handler("GET /untrusting", echo, request_id(trust_incoming=False))
    server.register_handler(
        "GET /custom", echo, [request_id(header="X-Trace", generator=lambda: "fixed-id")]
    )
    return webtest.TestApp(server)


def test_request_id_created(id_app: webtest.TestApp) -> None:
    res = id_app.get("/default")
    assert re.fullmatch(r"[0-9a-f]{32}", res.headers["X-Request-ID"])
    assert res.json == {"id": res.headers["X-Request-ID"]}
    assert id_app.get("/default").headers["X-Request-ID"] != res.headers["X-Request-ID"]


def test_request_id_taken_from_the_request(id_app: webtest.TestApp) -> None:
    res = id_app.get("/default", headers={"X-Request-ID": "lb-1234.abc"})
    assert res.headers["X-Request-ID"] == "lb-1234.abc"
    assert res.json == {"id": "lb-1234.abc"}


@pytest.mark.parametrize("incoming", ["has space", "x" * 201, 'quote"d', "ünï"])
def test_request_id_unsafe_incoming_is_replaced(id_app: webtest.TestApp, incoming: str) -> None:
    res = id_app.get(
        "/default", headers={"X-Request-ID": incoming.encode("utf-8").decode("latin-1")}
    )
    assert re.fullmatch(r"[0-9a-f]{32}", res.headers["X-Request-ID"])


def test_request_id_not_trusted(id_app: webtest.TestApp) -> None:
    res = id_app.get("/untrusting", headers={"X-Request-ID": "from-client"})
    assert res.headers["X-Request-ID"] != "from-client"


def test_request_id_custom_header_and_generator(id_app: webtest.TestApp) -> None:
    res = id_app.get("/custom")
    assert res.headers["X-Trace"] == "fixed-id"
    assert "X-Request-ID" not in res.headers
    assert id_app.get("/custom", headers={"X-Trace": "abc"}).headers["X-Trace"] == "abc"


def test_request_id_on_errors() -> None:
    server = Server()
    server.before_all(request_id())
    res = webtest.TestApp(server).get("/missing", status=404)
    assert res.headers["X-Request-ID"]
