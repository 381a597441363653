"""Errors: unhandled exceptions hidden and logged, HTTPError/abort, errorhandler, debug mode."""

from __future__ import annotations

import logging
from typing import Any
from unittest.mock import ANY

import pytest
import webtest
from werkzeug import exceptions as wz
from werkzeug.wrappers import Response

from microwsgi import HTTPError, Server, abort

SECRET = "db-password=hunter2"
PLAIN_500 = {"status": 500, "error": "Internal Server Error", "message": "Internal Server Error"}


def explode(request: dict[str, Any]) -> Any:
    raise RuntimeError(SECRET)


def test_exception_is_500_json_revealing_nothing(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    server.register_handler("GET /boom", explode)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = app.get("/boom", status=500, expect_errors=True)
    assert response.content_type == "application/json"
    assert response.json == PLAIN_500
    for leak in (SECRET, "Traceback", "RuntimeError", "explode", __file__):
        assert leak not in response.text
        assert all(leak not in value for _, value in response.headerlist)


def test_traceback_goes_to_the_microwsgi_logger(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    server.register_handler("POST /boom/:id", explode)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        app.post("/boom/7", status=500, expect_errors=True)
    records = [r for r in caplog.records if r.name == "microwsgi"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert SECRET in caplog.text  # the traceback text, for the operator
    message = record.getMessage()
    assert "explode" in message
    assert "POST /boom/7" in message


def test_exception_in_middleware_is_500(server: Server, app: webtest.TestApp) -> None:
    def broken(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            raise KeyError(SECRET)

        return handler

    server.register_handler("GET /a", lambda request: "a", broken)
    server.before_all(lambda next_handler: lambda request: next_handler(request)["nope"])
    server.register_handler("GET /b", lambda request: "b")
    for path in ("/a", "/b"):
        response = app.get(path, status=500, expect_errors=True)
        assert response.json == PLAIN_500
        assert SECRET not in response.text


def test_debug_puts_the_traceback_in_the_body() -> None:
    server = Server(debug=True)
    server.register_handler("GET /boom", explode)
    response = webtest.TestApp(server).get("/boom", status=500, expect_errors=True)
    body = response.json
    assert body["status"] == 500
    assert "Traceback" in body["traceback"]
    assert SECRET in body["traceback"]
    assert "explode" in body["traceback"]


def test_debug_adds_no_traceback_to_http_errors() -> None:
    server = Server(debug=True)
    server.register_handler("GET /x", lambda request: abort(404, "gone"))
    assert webtest.TestApp(server).get("/x", status=404).json == {
        "status": 404,
        "error": "Not Found",
        "message": "gone",
    }


@pytest.mark.parametrize("how", ["raise", "abort"])
def test_http_error_from_handler(server: Server, app: webtest.TestApp, how: str) -> None:
    def handler(request: dict[str, Any]) -> Any:
        if how == "raise":
            raise HTTPError(403, "not yours")
        abort(403, "not yours")

    server.register_handler("GET /x", handler)
    response = app.get("/x", status=403)
    assert response.content_type == "application/json"
    assert response.json == {"status": 403, "error": "Forbidden", "message": "not yours"}


def test_http_error_default_message_and_headers(server: Server, app: webtest.TestApp) -> None:
    def handler(request: dict[str, Any]) -> Any:
        abort(401, headers=[("WWW-Authenticate", 'Bearer realm="api"')])

    server.register_handler("GET /x", handler)
    server.register_handler("GET /y", lambda request: abort(409))
    response = app.get("/x", status=401)
    assert response.json == {"status": 401, "error": "Unauthorized", "message": "Unauthorized"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert app.get("/y", status=409).json["error"] == "Conflict"


@pytest.mark.parametrize(
    "headers",
    [
        {"WWW-Authenticate": "Bearer", "X-Reason": "expired"},
        [("WWW-Authenticate", "Bearer"), ("X-Reason", "expired")],
        [["WWW-Authenticate", "Bearer"], ["X-Reason", "expired"]],
        (("WWW-Authenticate", "Bearer"), ("X-Reason", "expired")),
    ],
    ids=["dict", "list of tuples", "list of lists", "tuple of tuples"],
)
def test_abort_takes_every_header_form_a_returned_tuple_takes(
    server: Server, app: webtest.TestApp, headers: Any
) -> None:
    server.register_handler("GET /tuple", lambda request: ({"x": 1}, 401, headers))
    server.register_handler("GET /abort", lambda request: abort(401, "nope", headers=headers))
    for path in ("/tuple", "/abort"):
        response = app.get(path, status=401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.headers["X-Reason"] == "expired"
    assert app.get("/abort", status=401).json["message"] == "nope"


def test_http_error_refuses_headers_that_are_not_pairs_when_raised() -> None:
    with pytest.raises(TypeError, match="is not a \\(name, value\\) pair"):
        HTTPError(401, headers=["WWW-Authenticate"])


def test_http_error_from_middleware(server: Server, app: webtest.TestApp) -> None:
    def guard(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            if "token" not in request["query"]:
                raise HTTPError(401, "token required")
            return next_handler(request)

        return handler

    @server.before_all()
    def rate_limit(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            if request["headers"].get("X-Flood"):
                abort(429, "slow down")
            return next_handler(request)

        return handler

    server.register_handler("GET /x", lambda request: "ok", guard)
    assert app.get("/x", status=401).json["message"] == "token required"
    assert app.get("/x?token=1").text == "ok"
    assert app.get("/x?token=1", headers={"X-Flood": "1"}, status=429).json == {
        "status": 429,
        "error": "Too Many Requests",
        "message": "slow down",
    }


@pytest.mark.parametrize("status", [200, 302, 99, 600, "404", None])
def test_http_error_refuses_non_error_statuses(status: Any) -> None:
    with pytest.raises(ValueError, match=r"400\.\.599"):
        HTTPError(status)


def test_404_405_500_share_one_shape(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("GET /x", lambda request: "x")
    server.register_handler("GET /boom", explode)
    answers = [
        app.get("/nope", status=404).json,
        app.post("/x", status=405).json,
        app.get("/boom", status=500, expect_errors=True).json,
    ]
    for body in answers:
        assert set(body) == {"status", "error", "message"}


@pytest.mark.parametrize(
    ("exception", "status"),
    [(wz.NotFound, 404), (wz.Forbidden, 403), (wz.ImATeapot, 418), (wz.ServiceUnavailable, 503)],
)
def test_werkzeug_http_exception_keeps_its_status(
    server: Server, app: webtest.TestApp, exception: type[wz.HTTPException], status: int
) -> None:
    def handler(request: dict[str, Any]) -> Any:
        raise exception()

    server.register_handler("GET /x", handler)
    response = app.get("/x", status=status)
    assert response.json["status"] == status
    assert response.content_type == "application/json"


# -- errorhandler ---------------------------------------------------------------------------


def test_errorhandler_for_404(server: Server, app: webtest.TestApp) -> None:
    @server.errorhandler(404)
    def not_found(request: dict[str, Any], error: HTTPError) -> Any:
        return {"missing": request["path"], "was": error.status}

    server.register_handler("GET /item/:id", lambda request: abort(404, "no such item"))
    assert app.get("/nowhere", status=404).json == {"missing": "/nowhere", "was": 404}
    assert app.get("/item/3", status=404).json == {"missing": "/item/3", "was": 404}


def test_errorhandler_for_500_sees_an_http_error(server: Server, app: webtest.TestApp) -> None:
    seen: list[Any] = []

    @server.errorhandler(500)
    def oops(request: dict[str, Any], error: HTTPError) -> Any:
        seen.append(error)
        return "<h1>Sorry</h1>", 500, {"Content-Type": "text/html; charset=utf-8"}

    server.register_handler("GET /boom", explode)
    response = app.get("/boom", status=500, expect_errors=True)
    assert response.text == "<h1>Sorry</h1>"
    assert response.content_type == "text/html"
    assert isinstance(seen[0], HTTPError)
    assert seen[0].status == 500


def test_errorhandler_for_an_exception_class(server: Server, app: webtest.TestApp) -> None:
    class OutOfStock(Exception):
        pass

    @server.errorhandler(LookupError)
    def lookup(request: dict[str, Any], error: Exception) -> Any:
        return {"lookup": type(error).__name__}, 422

    @server.errorhandler(OutOfStock)
    def out_of_stock(request: dict[str, Any], error: Exception) -> Any:
        return {"stock": str(error)}, 409

    def missing_key(request: dict[str, Any]) -> Any:
        return {}["k"]

    def sold_out(request: dict[str, Any]) -> Any:
        raise OutOfStock("none left")

    server.register_handler("GET /key", missing_key)  # KeyError is a LookupError
    server.register_handler("GET /stock", sold_out)
    # The exceptions are still logged with their traceback (hence expect_errors).
    assert app.get("/key", status=422, expect_errors=True).json == {"lookup": "KeyError"}
    assert app.get("/stock", status=409, expect_errors=True).json == {"stock": "none left"}


def test_errorhandler_keeps_status_and_headers(server: Server, app: webtest.TestApp) -> None:
    @server.errorhandler(405)
    def not_allowed(request: dict[str, Any], error: HTTPError) -> Any:
        return f"use one of: {dict(error.headers)['Allow']}"

    server.register_handler("GET /x", lambda request: "x")
    response = app.delete("/x", status=405)
    assert response.headers["Allow"]
    assert response.text.startswith("use one of: ")


def test_errorhandler_applies_to_middleware_errors(server: Server, app: webtest.TestApp) -> None:
    @server.errorhandler(401)
    def unauthorized(request: dict[str, Any], error: HTTPError) -> Any:
        return {"login": "/login", "why": error.message}

    def guard(next_handler: Any) -> Any:
        return lambda request: abort(401, "no session")

    server.register_handler("GET /x", lambda request: "x", guard)
    assert app.get("/x", status=401).json == {"login": "/login", "why": "no session"}


@pytest.mark.parametrize("key", [200, 399, 600, "404", None, object])
def test_errorhandler_refuses_bad_keys(server: Server, key: Any) -> None:
    with pytest.raises(ValueError, match="errorhandler"):
        server.errorhandler(key)


def test_error_handler_that_raises_gives_a_plain_500(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    @server.errorhandler(500)
    def broken(request: dict[str, Any], error: HTTPError) -> Any:
        raise ValueError("handler of handlers failed")

    server.register_handler("GET /boom", explode)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = app.get("/boom", status=500, expect_errors=True)
    assert response.json == PLAIN_500
    assert "handler of handlers failed" in caplog.text


def test_failing_404_handler_gives_a_plain_500(server: Server, app: webtest.TestApp) -> None:
    @server.errorhandler(404)
    def broken(request: dict[str, Any], error: HTTPError) -> Any:
        raise ValueError("broken 404 page")

    response = app.get("/nowhere", status=500, expect_errors=True)
    assert response.json == PLAIN_500


def test_error_handler_returning_garbage_gives_a_plain_500(
    server: Server, app: webtest.TestApp
) -> None:
    @server.errorhandler(500)
    def garbage(request: dict[str, Any], error: HTTPError) -> Any:
        return object()

    server.register_handler("GET /boom", explode)
    response = app.get("/boom", status=500, expect_errors=True)
    assert response.json == PLAIN_500


def test_error_handler_may_return_a_werkzeug_response(server: Server, app: webtest.TestApp) -> None:
    @server.errorhandler(404)
    def page(request: dict[str, Any], error: HTTPError) -> Any:
        return Response("<h1>Not here</h1>", status=404, mimetype="text/html")

    response = app.get("/nowhere", status=404)
    assert response.text == "<h1>Not here</h1>"


def test_every_error_answer_the_framework_produces_has_the_one_shape(tmp_path: Any) -> None:
    from microwsgi import send_file

    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "a.txt").write_bytes(b"0123456789")
    server = Server(max_body_size=10)
    server.register_handler("POST /json", lambda request: request["json"])
    server.register_handler("GET /file", lambda request: send_file(tmp_path / "public" / "a.txt"))
    server.static("/static", str(tmp_path / "public"))
    app = webtest.TestApp(server)
    far = {"Range": "bytes=100-"}
    answers = [
        (400, app.post("/json", b"{oops", content_type="application/json", status=400)),
        (404, app.get("/nowhere", status=404)),
        (405, app.delete("/json", status=405)),
        (413, app.post("/json", b"x" * 11, status=413)),
        (412, app.get("/file", headers={"If-Match": '"other"'}, status=412)),
        (416, app.get("/file", headers=far, status=416)),
        (416, app.get("/static/a.txt", headers=far, status=416)),
    ]
    for status, answer in answers:
        assert answer.content_type == "application/json", status
        body = answer.json
        assert body == {"status": status, "error": HTTPError(status).reason, "message": ANY}
        assert body["message"], status
