"""The request dict: its eager and lazy keys, decoding rules, and the size and encoding limits."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import webtest

from microwsgi import Server

Seen = dict[str, Any]


@pytest.fixture
def seen() -> Seen:
    return {}


def capture(seen: Seen, *keys: str) -> Any:
    """A handler that stores the listed request keys (or the request itself, with no keys)."""

    def handler(request: dict[str, Any]) -> str:
        if not keys:
            seen["request"] = request
        for key in keys:
            seen[key] = request[key]
        return "ok"

    return handler


def test_request_is_a_real_dict(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("GET /x", capture(seen))
    app.get("/x")
    request = seen["request"]
    assert isinstance(request, dict)
    assert request["verb"] == "GET"
    request["new"] = 1  # a dict accepts new keys
    assert request["new"] == 1
    assert request.get("missing", "default") == "default"
    with pytest.raises(KeyError):
        request["missing"]


def test_middleware_may_add_keys(server: Server, app: webtest.TestApp) -> None:
    def auth(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            request["user"] = request["headers"].get("X-User", "anonymous")
            return next_handler(request)

        return handler

    server.register_handler("GET /me", lambda request: {"user": request["user"]}, auth)
    assert app.get("/me", headers={"X-User": "ada"}).json == {"user": "ada"}
    assert app.get("/me").json == {"user": "anonymous"}


@pytest.mark.parametrize("how", ["unpack", "dict", "copy"])
def test_middleware_may_pass_a_copy_of_the_request(
    server: Server, app: webtest.TestApp, how: str
) -> None:
    # Seed middleware could do this: the seed's request was a plain dict with every key filled.
    def with_user(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            if how == "unpack":
                return next_handler({**request, "user": "ada"})
            copied = dict(request) if how == "dict" else request.copy()
            copied["user"] = "ada"
            return next_handler(copied)

        return handler

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "user": request["user"],
            "body": request["body"],
            "q": request["query"].get("q"),
            "h": request["headers"].get("X-H"),
        }

    server.register_handler("POST /x", handler, with_user)
    response = app.post("/x?q=1", b"text", headers={"X-H": "h"}, expect_errors=True)
    assert response.json == {"user": "ada", "body": "text", "q": "1", "h": "h"}


def test_verb_path_params_environ(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("* /items/:id", capture(seen, "verb", "path", "params", "environ"))
    app.delete("/items/7?force=1")
    assert seen["verb"] == "DELETE"
    assert seen["path"] == "/items/7"  # without the query
    assert seen["params"] == {"id": "7"}
    assert seen["environ"]["REQUEST_METHOD"] == "DELETE"
    assert seen["environ"]["QUERY_STRING"] == "force=1"


def test_path_is_decoded_utf8(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("GET /*rest", capture(seen, "path"))
    app.get("/caf%C3%A9/a%20b")
    assert seen["path"] == "/café/a b"


def test_body_is_text(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("POST /x", capture(seen, "body"))
    app.post("/x", "héllo wörld".encode(), content_type="text/plain")
    assert seen["body"] == "héllo wörld"
    app.post("/x", b"")
    assert seen["body"] == ""


@pytest.mark.parametrize(
    ("content_type", "raw", "text"),
    [
        ("text/plain; charset=latin-1", "café".encode("latin-1"), "café"),
        ("text/plain; charset=ISO-8859-1", b"\xe9", "é"),
        ("text/plain; charset=utf-16", "日本".encode("utf-16"), "日本"),
        ('text/plain; charset="utf-8"', "ü".encode(), "ü"),
        ("application/octet-stream", "ü".encode(), "ü"),  # no charset: UTF-8
    ],
)
def test_body_uses_the_charset_of_content_type(
    server: Server, app: webtest.TestApp, seen: Seen, content_type: str, raw: bytes, text: str
) -> None:
    server.register_handler("POST /x", capture(seen, "body"))
    app.post("/x", raw, content_type=content_type)
    assert seen["body"] == text


def test_invalid_utf8_body_is_400_when_read(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("POST /text", lambda request: request["body"])
    server.register_handler("POST /raw", lambda request: str(len(request["data"])))
    response = app.post("/text", b"\xff\xfe\xfa", content_type="text/plain", status=400)
    assert response.json["status"] == 400
    assert response.json["error"] == "Bad Request"
    # A handler that never decodes the body is not refused.
    assert app.post("/raw", b"\xff\xfe\xfa", content_type="text/plain").text == "3"


def test_unknown_charset_is_400(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("POST /text", lambda request: request["body"])
    response = app.post("/text", b"x", content_type="text/plain; charset=nope-9", status=400)
    assert "nope-9" in response.json["message"]


def test_headers_are_case_insensitive(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("GET /x", capture(seen, "headers"))
    app.get("/x", headers={"Authorization": "Bearer t", "X-Double": "1"})
    headers = seen["headers"]
    assert headers.get("Authorization") == "Bearer t"
    assert headers.get("authorization") == "Bearer t"
    assert headers["AUTHORIZATION"] == "Bearer t"
    assert "x-double" in headers
    assert "X-DOUBLE" in headers
    assert "double" not in headers
    assert headers.get("X-Missing") is None
    assert headers.get("X-Missing", "d") == "d"


def test_query_mapping(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("GET /q", capture(seen, "query"))
    app.get("/q?tag=a&tag=b&name=caf%C3%A9&sp=a+b%20c&pct=100%25&blank=&amp=%26")
    query = seen["query"]
    assert query.get("tag") == "a"
    assert query.getlist("tag") == ["a", "b"]
    assert query.get("name") == "café"
    assert query.get("sp") == "a b c"
    assert query.get("pct") == "100%"
    assert query.get("blank") == ""
    assert query.get("amp") == "&"
    assert query.get("missing", "dflt") == "dflt"
    assert query.get("missing") is None
    assert query.getlist("missing") == []
    assert "name" in query
    assert query["name"] == "café"


def test_query_is_empty_without_query_string(
    server: Server, app: webtest.TestApp, seen: Seen
) -> None:
    server.register_handler("GET /q", capture(seen, "query"))
    app.get("/q")
    assert dict(seen["query"]) == {}
    assert seen["query"].get("n", 3) == 3


def test_raw_non_ascii_query_string_is_utf8(server: Server, call_wsgi: Any, seen: Seen) -> None:
    # Some servers pass the query bytes through unescaped: latin-1 decoded, per PEP 3333.
    server.register_handler("GET /q", capture(seen, "query"))
    raw = "name=café".encode().decode("latin-1")
    result = call_wsgi(server, "/q", environ={"QUERY_STRING": raw})
    assert result.code == 200
    assert seen["query"].get("name") == "café"


def test_json_key(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("POST /j", capture(seen, "json"))
    app.post_json("/j", {"a": [1, "é"]})
    assert seen["json"] == {"a": [1, "é"]}
    app.post("/j", b'{"b": 2}', content_type="application/merge-patch+json")
    assert seen["json"] == {"b": 2}
    app.post("/j", b'{"c": 3}', content_type="text/plain")
    assert seen["json"] is None  # not declared as JSON


def test_invalid_json_is_400_json_error(server: Server, app: webtest.TestApp) -> None:
    server.register_handler("POST /j", lambda request: request["json"])
    response = app.post("/j", b"{not json", content_type="application/json", status=400)
    assert response.content_type == "application/json"
    assert response.json["status"] == 400
    assert response.json["error"] == "Bad Request"
    assert "JSON" in response.json["message"]


def test_form_key(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("POST /f", capture(seen, "form", "files"))
    app.post("/f", {"name": "café", "tag": ["a", "b"]})
    assert seen["form"].get("name") == "café"
    assert seen["form"].getlist("tag") == ["a", "b"]
    assert len(seen["files"]) == 0


def test_form_after_body(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("POST /f", capture(seen, "body", "form"))
    app.post("/f", {"name": "café"})
    assert seen["body"] == "name=caf%C3%A9"
    assert seen["form"].get("name") == "café"


def test_body_after_form(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    # A middleware that peeks at the form must not break a handler that reads the body.
    server.register_handler("POST /f", capture(seen, "form", "body"))
    app.post("/f", {"name": "café"})
    assert seen["form"].get("name") == "café"
    assert seen["body"] == "name=caf%C3%A9"


def test_files_key(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    def upload(request: dict[str, Any]) -> dict[str, Any]:
        stored = request["files"]["doc"]
        try:
            content = stored.read().decode()
        finally:  # closing twice is harmless; the server closes it too
            stored.close()
        return {"field": request["form"]["title"], "filename": stored.filename, "content": content}

    server.register_handler("POST /upload", upload)
    response = app.post(
        "/upload", {"title": "T"}, upload_files=[("doc", "notes.txt", "héllo".encode())]
    )
    assert response.json == {"field": "T", "filename": "notes.txt", "content": "héllo"}


def test_uploaded_files_are_closed_after_the_request(server: Server, app: webtest.TestApp) -> None:
    kept: list[Any] = []

    def upload(request: dict[str, Any]) -> str:
        kept.append(request["files"]["doc"])
        return "ok"

    server.register_handler("POST /upload", upload)
    big = b"x" * 600_000  # past werkzeug's in-memory threshold: a real temporary file
    try:
        app.post("/upload", upload_files=[("doc", "big.bin", big)])
        assert kept[0].stream.closed
    finally:
        kept[0].close()  # a failing run must not also leak a ResourceWarning


def test_data_key_is_raw_bytes(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("POST /d", capture(seen, "data", "body"))
    app.post("/d", b"\x00\x01abc", content_type="application/octet-stream")
    assert seen["data"] == b"\x00\x01abc"


def test_cookies_key(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("GET /c", capture(seen, "cookies"))
    app.get("/c", headers={"Cookie": "session=abc; theme=dark"})
    assert dict(seen["cookies"]) == {"session": "abc", "theme": "dark"}
    app.get("/c")
    assert dict(seen["cookies"]) == {}


def test_connection_keys(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler(
        "POST /where",
        capture(seen, "remote_addr", "url", "scheme", "host", "content_type", "content_length"),
    )
    app.post(
        "/where?x=1",
        b"12345",
        content_type="text/plain; charset=utf-8",
        extra_environ={"REMOTE_ADDR": "10.1.2.3", "SCRIPT_NAME": "/app"},
        headers={"Host": "example.com:8080"},
    )
    assert seen["remote_addr"] == "10.1.2.3"
    assert seen["url"] == "http://example.com:8080/app/where?x=1"
    assert seen["scheme"] == "http"
    assert seen["host"] == "example.com:8080"
    assert seen["content_type"] == "text/plain; charset=utf-8"
    assert seen["content_length"] == 5


def test_https_scheme_and_url(server: Server, app: webtest.TestApp, seen: Seen) -> None:
    server.register_handler("GET /s", capture(seen, "scheme", "url", "content_length"))
    app.get("/s", extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "secure.example"})
    assert seen["scheme"] == "https"
    assert seen["url"] == "https://secure.example/s"
    assert seen["content_length"] is None


def test_trusted_proxies_decide_who_the_client_is() -> None:
    def who(request: dict[str, Any]) -> dict[str, Any]:
        return {"addr": request["remote_addr"], "scheme": request["scheme"]}

    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    direct = Server()
    direct.register_handler("GET /who", who)
    behind = Server(trusted_proxies=1)
    behind.register_handler("GET /who", who)
    env = {"REMOTE_ADDR": "127.0.0.1"}
    response = webtest.TestApp(direct).get("/who", headers=forwarded, extra_environ=env)
    assert response.json == {"addr": "127.0.0.1", "scheme": "http"}
    response = webtest.TestApp(behind).get("/who", headers=forwarded, extra_environ=env)
    assert response.json == {"addr": "203.0.113.9", "scheme": "https"}


class ExplodingInput(io.BytesIO):
    """A wsgi.input that fails the test if anyone reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read")

    readline = read  # type: ignore[assignment]


def test_body_is_not_read_unless_asked(server: Server, call_wsgi: Any) -> None:
    server.register_handler("POST /x", lambda request: request["params"])
    result = call_wsgi(
        server,
        "/x",
        method="POST",
        environ={"wsgi.input": ExplodingInput(b"abc"), "CONTENT_LENGTH": "3"},
    )
    assert result.code == 200


def test_max_body_size_refuses_before_reading(call_wsgi: Any) -> None:
    calls: list[str] = []

    def mw(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            calls.append("middleware")
            return next_handler(request)

        return handler

    def handler(request: dict[str, Any]) -> Any:
        calls.append("handler")
        return request["body"]

    server = Server(max_body_size=10)
    server.register_handler("POST /x", handler, mw)
    result = call_wsgi(
        server,
        "/x",
        method="POST",
        environ={"wsgi.input": ExplodingInput(b"x" * 11), "CONTENT_LENGTH": "11"},
    )
    assert result.code == 413
    assert json.loads(b"".join(result.body))["status"] == 413
    assert calls == []
    # At the limit it is served.
    app = webtest.TestApp(server)
    assert app.post("/x", b"x" * 10).text == "x" * 10
    assert app.post("/x", b"x" * 11, status=413).json["status"] == 413


def test_max_body_size_applies_to_bodies_without_length(call_wsgi: Any) -> None:
    # A chunked request reaches the app without CONTENT_LENGTH, with wsgi.input_terminated.
    server = Server(max_body_size=10)
    server.register_handler("POST /x", lambda request: request["body"])
    environ = {
        "wsgi.input": io.BytesIO(b"y" * 50),
        "wsgi.input_terminated": True,
        "CONTENT_LENGTH": None,
    }
    result = call_wsgi(server, "/x", method="POST", environ=environ)
    assert result.code == 413
    environ = {
        "wsgi.input": io.BytesIO(b"y" * 5),
        "wsgi.input_terminated": True,
        "CONTENT_LENGTH": None,
    }
    result = call_wsgi(server, "/x", method="POST", environ=environ)
    assert result.code == 200
    assert b"".join(result.body) == b"yyyyy"


def test_max_body_size_none_is_unlimited(call_wsgi: Any) -> None:
    server = Server(max_body_size=None)
    server.register_handler("POST /x", lambda request: str(len(request["data"])))
    assert webtest.TestApp(server).post("/x", b"z" * 100_000).text == "100000"


def test_invalid_utf8_path_is_400(server: Server, app: webtest.TestApp) -> None:
    calls: list[str] = []
    server.register_handler("GET /*rest", lambda request: calls.append("handler"))
    response = app.get("/%FF%FE", status=400)
    assert response.json["status"] == 400
    assert "UTF-8" in response.json["message"]
    assert calls == []


def test_lazy_keys_work_through_get_and_in(
    server: Server, app: webtest.TestApp, seen: Seen
) -> None:
    def handler(request: dict[str, Any]) -> str:
        seen["get_body"] = request.get("body")
        seen["in_query"] = "query" in request
        seen["get_headers"] = request.get("headers")
        return "ok"

    server.register_handler("POST /x", handler)
    app.post("/x", b"text", headers={"X-A": "1"})
    assert seen["get_body"] == "text"
    assert seen["in_query"] is True
    assert seen["get_headers"]["X-A"] == "1"


def test_requests_do_not_share_state(server: Server, app: webtest.TestApp) -> None:
    requests: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        requests.append(request)
        request.setdefault("mark", len(requests))
        return {"mark": request["mark"], "params": request["params"]}

    server.register_handler("GET /r/:n", handler)
    assert app.get("/r/1").json == {"mark": 1, "params": {"n": "1"}}
    assert app.get("/r/2").json == {"mark": 2, "params": {"n": "2"}}
    assert requests[0] is not requests[1]
    assert requests[0]["params"] is not requests[1]["params"]


@pytest.mark.parametrize("length", ["abc", "-1", "+3", " 3", "\u00b3"])
def test_invalid_content_length_is_400_when_the_body_is_read(
    server: Server, call_wsgi: Any, length: str
) -> None:
    server.register_handler("POST /b", lambda request: request["body"])
    result = call_wsgi(server, "/b", method="POST", data=b"abc", environ={"CONTENT_LENGTH": length})
    assert result.status.startswith("400")
    assert "Content-Length" in json.loads(b"".join(result.body))["message"]


def test_body_shorter_than_its_content_length_is_400(server: Server, call_wsgi: Any) -> None:
    # A client that disconnects mid-body: what arrived is not handed over as the whole body.
    server.register_handler("POST /b", lambda request: request["data"])
    result = call_wsgi(server, "/b", method="POST", data=b"abc", environ={"CONTENT_LENGTH": "10"})
    assert result.status.startswith("400")
    assert json.loads(b"".join(result.body))["message"] == "request body ended after 3 of 10 bytes"
