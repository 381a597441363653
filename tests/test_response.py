"""Return values to HTTP answers: types, tuples, headers, no-body statuses, streaming, JSON.

Also the refusals: a value that cannot become a response is a 500, and the log names the
handler and what it returned.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import logging
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
import webtest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from microwsgi import Server, make_response, redirect
from microwsgi.middleware import request_id


def serve(value: Any, **server_options: Any) -> webtest.TestApp:
    """A TestApp whose every path answers with `value` (called fresh if it is a function)."""
    server = Server(**server_options)

    def handler(request: dict[str, Any]) -> Any:
        return value() if callable(value) and not isinstance(value, Response) else value

    server.register_handler("* /*path", handler)
    return webtest.TestApp(server)


# -- bodies ---------------------------------------------------------------------------------


def test_dict_is_json_with_non_ascii_kept() -> None:
    response = serve({"msg": "héllo 日本", "n": 1}).get("/")
    assert response.headers["Content-Type"] == "application/json"
    assert response.body == '{"msg":"héllo 日本","n":1}'.encode()
    assert "\\u" not in response.text
    assert response.json == {"msg": "héllo 日本", "n": 1}


def test_list_is_json() -> None:
    response = serve([1, "ü", None, {"a": True}]).get("/")
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == [1, "ü", None, {"a": True}]


def test_str_is_utf8_text() -> None:
    response = serve("grüße").get("/")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.body == "grüße".encode()


@pytest.mark.parametrize("value", [b"\x00\xffraw", bytearray(b"\x00\xffraw")])
def test_bytes_are_octet_stream(value: Any) -> None:
    response = serve(value).get("/")
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.body == b"\x00\xffraw"


def test_none_is_204_without_content_headers() -> None:
    response = serve(None).get("/", status=204)
    assert response.body == b""
    assert "Content-Type" not in response.headers
    assert "Content-Length" not in response.headers


def test_body_and_status() -> None:
    response = serve(("Not Found", 404)).get("/", status=404)
    assert response.text == "Not Found"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert serve(({"id": 1}, 201)).get("/", status=201).json == {"id": 1}
    assert serve(("made", HTTPStatus.CREATED)).get("/", status=201).text == "made"
    assert serve(("odd", 599)).get("/", status=599).text == "odd"


def test_body_status_and_headers_dict() -> None:
    response = serve(("Created", 201, {"Location": "/resource/1", "X-Id": "1"})).get("/")
    assert response.status_int == 201
    assert response.headers["Location"] == "/resource/1"
    assert response.headers["X-Id"] == "1"
    assert response.text == "Created"


def test_headers_as_pairs_repeat_set_cookie() -> None:
    headers = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"), ("X-A", "x")]
    response = serve(("ok", 200, headers)).get("/")
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.headers["X-A"] == "x"


@pytest.mark.parametrize("name", ["Content-Type", "content-type"])
def test_content_type_override(name: str) -> None:
    response = serve(("<b>hi</b>", 200, {name: "text/html; charset=utf-8"})).get("/")
    assert response.headers.getall("Content-Type") == ["text/html; charset=utf-8"]
    assert response.text == "<b>hi</b>"
    response = serve(({"a": 1}, 200, [(name, "application/problem+json")])).get("/")
    assert response.headers.getall("Content-Type") == ["application/problem+json"]
    assert json.loads(response.body) == {"a": 1}


@pytest.mark.parametrize(
    "value",
    [
        {"a": "é"},
        ["x"],
        "text é",
        b"bytes",
        ("tuple", 202),
        ({"x": 1}, 201, {"X-A": "1"}),
        ("", 200),
        (b"", 200),
        ("ok", 200, {"Content-Length": "999"}),  # a wrong user Content-Length is replaced
    ],
)
def test_content_length_on_every_body(server: Server, call_wsgi: Any, value: Any) -> None:
    # Raw WSGI headers: WebOb would fill in a missing Content-Length by itself.
    server.register_handler("GET /x", lambda request: value)
    result = call_wsgi(server, "/x")
    body = b"".join(result.body)
    assert [v for n, v in result.headers if n.lower() == "content-length"] == [str(len(body))]


def test_content_length_on_error_answers(server: Server, call_wsgi: Any) -> None:
    server.register_handler("GET /x", lambda request: "x")
    for result in (call_wsgi(server, "/nope"), call_wsgi(server, "/x", method="POST")):
        assert result.code in (404, 405)
        assert result.header("Content-Length") == str(len(b"".join(result.body)))


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_drop_body_and_content_type(call_wsgi: Any, status: int) -> None:
    app = serve(("ignored body", status, {"ETag": '"v1"'}))
    response = app.get("/", status=status)
    assert response.body == b""
    assert response.headers["ETag"] == '"v1"'
    result = call_wsgi(app.app, "/")
    assert result.code == status
    assert list(result.body) == []
    assert result.header("Content-Type") is None
    assert result.header("Content-Length") is None


def test_none_has_no_content_headers_on_the_wire(server: Server, call_wsgi: Any) -> None:
    server.register_handler("DELETE /x", lambda request: None)
    result = call_wsgi(server, "/x", method="DELETE")
    assert result.status == "204 No Content"
    assert result.headers == []
    assert list(result.body) == []


def test_no_body_status_drops_user_content_type() -> None:
    response = serve(({"a": 1}, 304, {"Content-Type": "application/json"})).get("/", status=304)
    assert "Content-Type" not in response.headers
    assert response.body == b""


def test_werkzeug_response_is_served_as_is() -> None:
    def answer() -> Response:
        response = Response("<p>hi</p>", status=418, mimetype="text/html")
        response.headers["X-Custom"] = "1"
        response.set_cookie("k", "v")
        return response

    app = serve(answer)
    response = app.get("/", status=418)
    assert response.text == "<p>hi</p>"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["X-Custom"] == "1"
    assert response.headers["Set-Cookie"].startswith("k=v")
    head = app.head("/", status=418)
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(b"<p>hi</p>"))


def test_werkzeug_response_inside_a_tuple_is_refused() -> None:
    response = serve((Response("x"), 200)).get("/", status=500, expect_errors=True)
    assert response.json["status"] == 500


# -- streaming ------------------------------------------------------------------------------


def test_generator_of_str_is_streamed(server: Server, call_wsgi: Any) -> None:
    def stream(request: dict[str, Any]) -> Iterator[str]:
        yield "one "
        yield "twö "
        yield "three"

    server.register_handler("GET /s", stream)
    result = call_wsgi(server, "/s")
    assert result.code == 200
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert result.header("Content-Length") is None
    chunks = list(result.body)
    result.body.close()
    assert chunks == [b"one ", "twö ".encode(), b"three"]


def test_iterator_of_bytes_is_streamed(server: Server, call_wsgi: Any) -> None:
    # WebOb fills in Content-Length after the fact, so the raw WSGI headers are checked here.
    server.register_handler("GET /s", lambda request: iter([b"\x00a", b"b"]))
    result = call_wsgi(server, "/s")
    assert result.header("Content-Type") == "application/octet-stream"
    assert result.header("Content-Length") is None
    assert list(result.body) == [b"\x00a", b"b"]
    result.body.close()


def test_empty_generator_is_an_empty_body() -> None:
    response = serve(lambda: iter(())).get("/")
    assert response.status_int == 200
    assert response.body == b""


def test_streamed_tuple_keeps_status_headers_and_user_length(
    server: Server, call_wsgi: Any
) -> None:
    def events() -> Any:
        return (chunk for chunk in ["data: 1\n\n", "data: 2\n\n"])

    response = serve(lambda: (events(), 201, {"Content-Type": "text/event-stream"})).get("/")
    assert response.status_int == 201
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.text == "data: 1\n\ndata: 2\n\n"
    server.register_handler(
        "GET /sized", lambda request: (iter([b"abc", b"def"]), 200, {"Content-Length": "6"})
    )
    sized = call_wsgi(server, "/sized")
    assert sized.header("Content-Length") == "6"
    assert b"".join(sized.body) == b"abcdef"


def test_closing_the_body_early_closes_the_generator(server: Server, call_wsgi: Any) -> None:
    events: list[str] = []

    def stream(request: dict[str, Any]) -> Iterator[str]:
        try:
            for i in range(100):
                events.append(f"yield {i}")
                yield f"{i}\n"
        finally:
            events.append("closed")

    server.register_handler("GET /s", stream)
    result = call_wsgi(server, "/s")
    body = iter(result.body)
    assert next(body) == b"0\n"
    assert next(body) == b"1\n"
    result.body.close()  # the client went away
    assert events[-1] == "closed"
    assert "yield 5" not in events


def test_head_on_a_stream_sends_nothing_and_closes_it(server: Server, call_wsgi: Any) -> None:
    events: list[str] = []

    def stream(request: dict[str, Any]) -> Iterator[str]:
        try:
            yield "a"
            yield "b"
        finally:
            events.append("closed")

    server.register_handler("GET /s", stream)
    result = call_wsgi(server, "/s", method="HEAD")
    assert result.code == 200
    assert list(result.body) == []
    assert events == ["closed"]


# -- JSON -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    label: str


def test_json_of_extra_types() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "point": Point(1, "é"),
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 5, 6),
        "id": ident,
        "price": decimal.Decimal("12.50"),
    }
    assert serve(value).get("/").json == {
        "point": {"x": 1, "label": "é"},
        "when": "2024-05-06T07:08:09+00:00",
        "day": "2024-05-06",
        "id": "12345678-1234-5678-1234-567812345678",
        "price": "12.50",
    }


@pytest.mark.parametrize("returns_bytes", [False, True])
def test_json_dumps_plug_in(returns_bytes: bool) -> None:
    def dumps(obj: Any) -> str | bytes:
        text = json.dumps(obj, sort_keys=True, indent=1)
        return text.encode() if returns_bytes else text

    app = serve({"b": 1, "a": 2}, json_dumps=dumps)
    response = app.get("/")
    assert response.text == '{\n "a": 2,\n "b": 1\n}'
    assert response.headers["Content-Length"] == str(len(response.body))
    # Error bodies go through the same encoder.
    server = Server(json_dumps=dumps)
    assert webtest.TestApp(server).get("/x", status=404).text.startswith('{\n "error"')


# -- make_response --------------------------------------------------------------------------


def add_header(next_handler: Any) -> Any:
    def handler(request: dict[str, Any]) -> Any:
        response = make_response(next_handler(request), request)
        response.headers["X-Added"] = "yes"
        return response

    return handler


# Each answer kind, what it is sent as: status, body, Content-Type.
ANSWERS = [
    ({"a": "é"}, 200, '{"a":"é"}'.encode(), "application/json"),
    ("text", 200, b"text", "text/plain; charset=utf-8"),
    (b"\x00", 200, b"\x00", "application/octet-stream"),
    (("made", 201, {"Location": "/1"}), 201, b"made", "text/plain; charset=utf-8"),
    (None, 204, b"", None),
    (("", 304, {"ETag": '"e"'}), 304, b"", None),
]


@pytest.mark.parametrize(("value", "status", "body", "ctype"), ANSWERS)
def test_make_response_in_middleware(
    value: Any, status: int, body: bytes, ctype: str | None
) -> None:
    server = Server()
    server.register_handler("GET /x", lambda request: value, add_header)
    response = webtest.TestApp(server).get("/x", status=status)
    assert response.headers["X-Added"] == "yes"
    assert response.body == body
    assert response.headers.get("Content-Type") == ctype
    if status not in (204, 304):  # no body to measure
        assert response.headers["Content-Length"] == str(len(body))
    if status == 201:
        assert response.headers["Location"] == "/1"


def test_make_response_on_errors_and_streams(server: Server, app: webtest.TestApp) -> None:
    server.before_all(add_header)
    server.register_handler("GET /s", lambda request: iter(["a", "b"]))
    assert app.get("/s").text == "ab"
    assert app.get("/s").headers["X-Added"] == "yes"
    missing = app.get("/missing", status=404)
    assert missing.headers["X-Added"] == "yes"
    assert missing.json["status"] == 404


def test_make_response_uses_the_servers_json_encoder() -> None:
    seen: list[bytes] = []

    def handler(request: dict[str, Any]) -> Any:
        seen.append(make_response({"b": 1, "a": 2}, request).get_data())
        seen.append(make_response({"b": 1, "a": 2}).get_data())
        return "ok"

    server = Server(json_dumps=lambda obj: json.dumps(obj, sort_keys=True))
    server.register_handler("GET /x", handler)
    webtest.TestApp(server).get("/x")
    assert seen == [b'{"a": 2, "b": 1}', b'{"b":1,"a":2}']


def test_make_response_passes_a_response_through() -> None:
    response = Response("x")
    assert make_response(response) is response


# -- prepared answers: what the ready-made middleware return --------------------------------
# request_id, sessions, cors and request_logger add their headers to a `Prepared` (the answer's
# status, headers and body) rather than to a werkzeug Response; it is served by the rules a
# tuple answer is, and make_response still turns it into a Response for middleware outside.


@pytest.mark.parametrize(("value", "status", "body", "ctype"), ANSWERS)
def test_a_prepared_answer_is_served_as_its_tuple_would_be(
    value: Any, status: int, body: bytes, ctype: str | None
) -> None:
    server = Server()
    server.register_handler("GET /x", lambda request: value, request_id(generator=lambda: "id1"))
    server.register_handler("GET /plain", lambda request: value)
    app = webtest.TestApp(server)
    for verb in ("GET", "HEAD"):
        prepared = app.request("/x", method=verb, status=status)
        plain = app.request("/plain", method=verb, status=status)
        assert prepared.headers["X-Request-ID"] == "id1"
        assert prepared.body == (b"" if verb == "HEAD" else body) == plain.body
        assert prepared.headers.get("Content-Type") == ctype
        del prepared.headers["X-Request-ID"]
        assert prepared.headerlist == plain.headerlist


def test_a_prepared_stream_is_streamed_and_closed_on_head(server: Server, call_wsgi: Any) -> None:
    closed = []

    def stream(request: dict[str, Any]) -> Iterator[str]:
        try:
            yield "a"
            yield "b"
        finally:
            closed.append(request["verb"])

    server.register_handler("GET /s", stream, request_id())
    result = call_wsgi(server, "/s")
    assert "X-Request-ID" in dict(result.headers)
    assert "Content-Length" not in dict(result.headers)
    assert b"".join(result.body) == b"ab"
    result.body.close()
    head = call_wsgi(server, "/s", method="HEAD")
    assert "X-Request-ID" in dict(head.headers)
    assert list(head.body) == []
    assert closed == ["GET", "HEAD"]


@pytest.mark.parametrize(("value", "status", "body", "ctype"), ANSWERS)
def test_make_response_outside_a_ready_made_middleware(
    value: Any, status: int, body: bytes, ctype: str | None
) -> None:
    made = []

    def outer(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            response = make_response(next_handler(request), request)
            made.append(response)
            response.headers["X-Added"] = "yes"
            return response

        return handler

    server = Server()
    server.register_handler("GET /x", lambda request: value, [outer, request_id()])
    response = webtest.TestApp(server).get("/x", status=status)
    assert isinstance(made[0], Response)
    assert made[0].status_code == status
    assert response.headers["X-Added"] == "yes"
    assert response.headers["X-Request-ID"]
    assert response.body == body
    assert response.headers.get("Content-Type") == ctype


def test_a_prepared_answer_inside_a_tuple_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    def in_a_tuple(next_handler: Any) -> Any:
        return lambda request: (next_handler(request), 201)

    server = Server()
    server.register_handler("GET /r", lambda request: "fine", [in_a_tuple, request_id()])
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = webtest.TestApp(server).get("/r", status=500, expect_errors=True)
    assert response.json["status"] == 500
    assert "a prepared answer must be returned alone, not in a tuple" in caplog.text


@pytest.mark.parametrize("header", ["Bad Name", "X-Id\r\nInjected: 1"])
def test_a_header_the_wire_refuses_on_a_prepared_answer_is_500_naming_it(
    caplog: pytest.LogCaptureFixture, header: str
) -> None:
    server = Server()
    server.register_handler("GET /r", lambda request: "fine", request_id(header=header))
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = webtest.TestApp(server).get("/r", status=500, expect_errors=True)
    assert response.json["message"] == "Internal Server Error"
    assert "Injected" not in str(response.headers)
    assert "GET /r" in caplog.text
    assert f"{header!r}" in caplog.text
    assert "the name is not an HTTP token" in caplog.text


# -- refusals -------------------------------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


BAD_VALUES = [
    pytest.param(("x", 200, {}, "extra"), "('x', 200, {}, 'extra')", id="4-tuple"),
    pytest.param(("x",), "('x',)", id="1-tuple"),
    pytest.param(Opaque(), "<Opaque thing>", id="arbitrary-object"),
    pytest.param(42, "42", id="int"),
    pytest.param(("x", 600), "600", id="status-600"),
    pytest.param(("x", 99), "99", id="status-99"),
    pytest.param(("x", "200"), "'200'", id="status-str"),
    pytest.param(("x", 200.0), "200.0", id="status-float"),
    pytest.param(("x", True), "True", id="status-bool"),
    pytest.param(("x", 200, ["abc"]), "['abc']", id="headers-not-pairs"),
    pytest.param(("x", 200, [("a", "b", "c")]), "('a', 'b', 'c')", id="header-triple"),
    pytest.param(("x", 200, "X-A: b"), "'X-A: b'", id="headers-str"),
    pytest.param(("x", 200, {"X-N": 1}), "'X-N': 1", id="header-value-int"),
    pytest.param(("x", 200, {"X-N": b"v"}), "b'v'", id="header-value-bytes"),
    pytest.param(("x", 200, {"X-N": "a\r\nInjected: 1"}), "Injected", id="header-crlf"),
    # The engine's rule (an HTTP token; no CR, LF or NUL in a value), checked where the handler
    # can still be named rather than deeper, when the head is written.
    pytest.param(("x", 200, {"Bad Name": "v"}), "Bad Name", id="header-name-space"),
    pytest.param(("x", 200, {"X(Y)": "v"}), "X(Y)", id="header-name-not-token"),
    pytest.param(("x", 200, {"X:Y": "v"}), "X:Y", id="header-name-colon"),
    pytest.param(("x", 200, {"": "v"}), "('', 'v')", id="header-name-empty"),
    pytest.param(("x", 200, {"X-N": "a\x00b"}), "X-N", id="header-value-nul"),
    pytest.param(Response("x", headers={"Bad Name": "v"}), "Bad Name", id="response-header-name"),
    pytest.param(Response("x", headers={"X-N": "a\x00b"}), "X-N", id="response-header-nul"),
    pytest.param({"a": Opaque()}, "Opaque", id="json-unserializable"),
    pytest.param((Opaque(), 201), "<Opaque thing>", id="tuple-opaque-body"),
    pytest.param(iter([1, 2]), "list_iterator", id="stream-of-ints"),
]


@pytest.mark.parametrize(("value", "shown"), BAD_VALUES)
def test_bad_return_value_is_500_and_logged(
    caplog: pytest.LogCaptureFixture, value: Any, shown: str
) -> None:
    server = Server()

    def broken_handler(request: dict[str, Any]) -> Any:
        return value

    server.register_handler("GET /bad", broken_handler)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = webtest.TestApp(server).get("/bad", status=500, expect_errors=True)
    assert response.json == {
        "status": 500,
        "error": "Internal Server Error",
        "message": "Internal Server Error",
    }
    assert response.headers["Content-Length"] == str(len(response.body))
    assert shown not in response.text  # nothing of the bad value leaks to the client
    records = [r for r in caplog.records if r.name == "microwsgi"]
    assert records, "nothing logged on the 'microwsgi' logger"
    assert "broken_handler" in caplog.text
    assert "GET /bad" in caplog.text
    assert shown in caplog.text  # the message or, for a JSON failure, the exception text


def test_bad_value_from_middleware_is_500_naming_the_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def spoil(next_handler: Any) -> Any:
        return lambda request: ("x", 1000)

    server = Server()
    server.register_handler("GET /r", lambda request: "fine", spoil)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        webtest.TestApp(server).get("/r", status=500, expect_errors=True)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /r" in logged
    assert "1000" in logged


def test_a_mounted_app_giving_a_bad_header_is_500_naming_the_mount(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X Legacy", "1")])
        return [b"never sent"]

    server = Server()
    server.mount("/legacy", legacy)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = webtest.TestApp(server).get("/legacy/x", status=500, expect_errors=True)
    assert "never sent" not in response.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "mount /legacy" in logged
    assert "'X Legacy'" in logged and "not an HTTP token" in logged


@pytest.mark.parametrize(
    ("status", "headers", "shown"),
    [
        ("200 OK", [(b"X-Bytes", b"1")], "(str, str) pairs"),
        ("200 OK", [("X-Ok", "1"), ("X-Bad", "a\rb")], "'X-Bad'"),
        ("OK", [("X-Ok", "1")], "invalid WSGI status 'OK'"),
        ("2000", [], "invalid WSGI status '2000'"),  # no space: not 200 with a reason '0'
        ("\u00b200 OK", [], "invalid WSGI status '\u00b200 OK'"),  # a digit, but not ASCII
        ("600 High", [], "600 is outside 100..599"),
    ],
)
def test_a_mounted_apps_status_and_headers_are_checked_too(
    caplog: pytest.LogCaptureFixture, status: str, headers: list[Any], shown: str
) -> None:
    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b"never sent"]

    server = Server()
    server.mount("/legacy", legacy)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        webtest.TestApp(server).get("/legacy/x", status=500, expect_errors=True)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "mount /legacy" in logged and shown in logged


def test_bad_return_value_is_500_under_werkzeug_client() -> None:
    server = Server()
    server.register_handler("GET /bad", lambda request: Opaque())
    response = Client(server).get("/bad")
    assert response.status_code == 500


def test_generator_failing_on_first_chunk_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def stream(request: dict[str, Any]) -> Iterator[str]:
        raise RuntimeError("generator exploded")
        yield "never"  # pragma: no cover

    server = Server()
    server.register_handler("GET /s", stream)
    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        response = webtest.TestApp(server).get("/s", status=500, expect_errors=True)
    assert "exploded" not in response.text
    assert any(r.exc_info and "generator exploded" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_sends_location_and_status(server: Server, status: int) -> None:
    server.register_handler("GET /old", lambda request: redirect("/new", status))
    response = webtest.TestApp(server).get("/old", status=status)
    assert response.headers["Location"].endswith("/new")
    assert response.headers["Content-Length"] == "0"


def test_redirect_default_is_302_and_location_is_ascii(server: Server) -> None:
    server.register_handler("GET /old", lambda request: redirect("/café?q=ü"))
    response = webtest.TestApp(server).get("/old", status=302)
    assert response.headers["Location"].endswith("/caf%C3%A9?q=%C3%BC")


def test_redirect_refuses_a_status_that_is_not_a_redirect() -> None:
    with pytest.raises(ValueError, match="redirect status"):
        redirect("/x", 200)


def test_redirect_is_a_plain_answer_that_middleware_can_decorate(server: Server) -> None:
    def tag(next_handler: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            response = make_response(next_handler(request), request)
            response.headers["X-Tag"] = "1"
            return response

        return handler

    server.register_handler("GET /old", lambda request: redirect("https://example.com/"), tag)
    response = webtest.TestApp(server).get("/old", status=302)
    assert response.headers["Location"] == "https://example.com/"
    assert response.headers["X-Tag"] == "1"


def test_json_without_the_c_accelerator_follows_the_same_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json.encoder
    import uuid

    from microwsgi.answer_checks import InvalidResponse
    from microwsgi.response import Renderer

    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    dumps = Renderer().dumps
    value = {"name": "café", "id": uuid.UUID(int=1), "items": [1, 2]}
    assert (
        dumps(value)
        == '{"name":"café","id":"00000000-0000-0000-0000-000000000001","items":[1,2]}'.encode()
    )
    with pytest.raises(InvalidResponse, match="JSON"):
        dumps({"bad": object()})
