"""Declared input and output types: ``body=``, ``query=``, ``returns=`` and ``status=``.

Each kind of type pydantic takes (a model, a dataclass, a TypedDict, a list of them), the 415,
400 and 422 answers with their ``errors`` list, fields ``returns=`` keeps from the client,
``status=``, the order against middleware, the checks made at registration, and routes that
declare nothing left exactly as they were.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import tools
import webtest
from typing_extensions import TypedDict

from microwsgi import Server, abort

tools.require_extra("pydantic")
from pydantic import BaseModel, Field  # noqa: E402 - after require_extra


class NewTodo(BaseModel):
    title: str = Field(min_length=1)
    priority: int = 1


class Todo(BaseModel):
    id: int
    title: str


class StoredTodo(Todo):
    password_hash: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Label(TypedDict):
    name: str
    colour: str


class Search(BaseModel):
    tag: list[str] = []
    limit: int = 10
    done: bool | None = None


def echo_body(request: dict[str, Any]) -> Any:
    model = request["body_model"]
    return {"type": type(model).__name__, "value": repr(model)}


@pytest.fixture
def app(server: Server) -> webtest.TestApp:
    return webtest.TestApp(server)


# -- body= ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "sent", "seen"),
    [
        (NewTodo, {"title": "write"}, "NewTodo(title='write', priority=1)"),
        (Point, {"x": 1, "y": "2"}, "Point(x=1, y=2)"),
        (Label, {"name": "bug", "colour": "red"}, "{'name': 'bug', 'colour': 'red'}"),
        (list[Point], [{"x": 1, "y": 2}], "[Point(x=1, y=2)]"),
    ],
    ids=["model", "dataclass", "typeddict", "list"],
)
def test_body_is_validated_into_body_model(
    server: Server, app: webtest.TestApp, declared: Any, sent: Any, seen: str
) -> None:
    server.register_handler("POST /things", echo_body, body=declared)
    assert app.post_json("/things", sent).json["value"] == seen


def test_a_body_that_does_not_fit_is_a_422_listing_every_problem(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler("POST /todos", echo_body, body=NewTodo)
    answer = app.post_json("/todos", {"title": "", "priority": "high"}, status=422)
    assert answer.json == {
        "status": 422,
        "error": answer.json["error"],  # 'Unprocessable Entity' or 'Content', by Python version
        "message": "the request body is invalid: 2 errors",
        "errors": [
            {
                "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "type": "string_too_short",
            },
            {
                "loc": ["body", "priority"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "type": "int_parsing",
            },
        ],
    }
    assert answer.json["error"].startswith("Unprocessable")
    # A list's items are located by index; the rejected input is never echoed back.
    server.register_handler("PUT /points", echo_body, body=list[Point])
    answer = app.put_json("/points", [{"x": 1, "y": 2}, {"x": "secret"}], status=422)
    assert [error["loc"] for error in answer.json["errors"]] == [
        ["body", 1, "x"],
        ["body", 1, "y"],
    ]
    assert "secret" not in answer.text


def test_a_body_not_sent_as_json_is_a_415_and_invalid_json_a_400(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler("POST /todos", echo_body, body=NewTodo)
    answer = app.post("/todos", "title=write", status=415)
    assert "application/json" in answer.json["message"]
    app.post("/todos", status=415)  # no body at all
    answer = app.post("/todos", '{"title": ', content_type="application/json", status=400)
    assert answer.json["message"].startswith("request body is not valid JSON")
    # application/*+json is JSON too (RFC 6839), and JSON null is a value to validate.
    app.post("/todos", '{"title": "a"}', content_type="application/merge-patch+json")
    answer = app.post("/todos", "null", content_type="application/json", status=422)
    assert answer.json["errors"][0]["loc"] == ["body"]


# -- query= --------------------------------------------------------------------------------------


def test_query_is_validated_into_query_model_and_query_stays_as_it_is(
    server: Server, app: webtest.TestApp
) -> None:
    @server.get("/search", query=Search)
    def search(request: dict[str, Any]) -> Any:
        model = request["query_model"]
        return {"model": model.model_dump(), "query": request["query"]}

    # A repeated key fills a list, a single value makes a one-item list, absent keys default.
    answer = app.get("/search?tag=a&tag=b&limit=3&done=true").json
    assert answer["model"] == {"tag": ["a", "b"], "limit": 3, "done": True}
    assert answer["query"] == {"tag": "a", "limit": "3", "done": "true"}
    assert app.get("/search?tag=solo").json["model"] == {"tag": ["solo"], "limit": 10, "done": None}
    assert app.get("/search").json["model"] == {"tag": [], "limit": 10, "done": None}
    # Keys the type does not declare are left to request['query'].
    assert app.get("/search?page=2").json["query"] == {"page": "2"}


def test_a_query_that_does_not_fit_is_a_422(server: Server, app: webtest.TestApp) -> None:
    @dataclasses.dataclass
    class Page:
        number: int
        size: int = 20

    server.register_handler("GET /pages", lambda request: {}, query=Page)
    answer = app.get("/pages?size=big", status=422).json
    assert answer["message"] == "the query string is invalid: 2 errors"
    assert [(e["loc"], e["type"]) for e in answer["errors"]] == [
        (["query", "number"], "missing"),
        (["query", "size"], "int_parsing"),
    ]


def test_a_query_type_must_have_scalar_or_list_fields(server: Server) -> None:
    class Nested(BaseModel):
        where: Point

    with pytest.raises(ValueError, match=r"route 'GET /n': query=.*Nested: field 'where' must"):
        server.register_handler("GET /n", lambda request: {}, query=Nested)
    with pytest.raises(ValueError, match=r"query=list\[str\] must have named fields"):
        server.register_handler("GET /l", lambda request: {}, query=list[str])


# -- returns= and status= ------------------------------------------------------------------------


def test_returns_drops_the_fields_the_type_does_not_declare(
    server: Server, app: webtest.TestApp
) -> None:
    stored = {"id": 1, "title": "write", "password_hash": "pbkdf2$..."}

    server.register_handler("GET /dict", lambda request: stored, returns=Todo)
    server.register_handler("GET /model", lambda request: StoredTodo(**stored), returns=Todo)
    server.register_handler("GET /list", lambda request: [stored, stored], returns=list[Todo])
    server.register_handler("GET /typed", lambda request: {"name": "a", "colour": "b", "x": 1},
                            returns=Label)  # fmt: skip

    assert app.get("/dict").json == {"id": 1, "title": "write"}
    assert app.get("/model").json == {"id": 1, "title": "write"}
    assert app.get("/list").json == [{"id": 1, "title": "write"}] * 2
    assert app.get("/typed").json == {"name": "a", "colour": "b"}
    assert "password_hash" not in app.get("/dict").text


def test_returns_serialises_a_tuple_answers_value_and_keeps_its_status_and_headers(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler(
        "POST /points", lambda request: (Point(1, 2), 201, {"Location": "/points/1"}),
        returns=Point, status=202,
    )  # fmt: skip
    server.register_handler("GET /count", lambda request: 3, returns=int)
    answer = app.post("/points", status=201)
    assert answer.json == {"x": 1, "y": 2}
    assert answer.headers["Location"] == "/points/1"
    # A value that is neither an object nor an array is sent as JSON too.
    answer = app.get("/count")
    assert (answer.content_type, answer.body) == ("application/json", b"3")


def test_an_answer_that_does_not_fit_is_a_500_logged_with_the_route_and_first_error(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    @server.get("/todos/:id<int>", returns=Todo)
    def get_todo(request: dict[str, Any]) -> Any:
        return {"id": "seven", "name": "misnamed"}

    with caplog.at_level(logging.ERROR, logger="microwsgi"):
        answer = app.get("/todos/7", status=500)
    assert answer.json["message"] == "Internal Server Error"  # nothing leaks to the client
    assert "seven" not in answer.text
    [record] = caplog.records
    logged = record.getMessage() + str(record.exc_info[1] if record.exc_info else "")
    assert "get_todo (GET /todos/:id<int>)" in logged
    assert "does not fit returns=Todo (2 errors); first, at id: Input should be a valid" in logged


def test_status_is_the_status_of_an_answer_that_gives_none(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler("POST /made", lambda request: {"ok": True}, status=201)
    server.register_handler("POST /own", lambda request: ({"ok": True}, 200), status=201)
    server.register_handler("POST /typed", lambda request: {"id": 1, "title": "t"},
                            returns=Todo, status=201)  # fmt: skip
    server.register_handler("DELETE /gone", lambda request: None, status=204)

    assert app.post("/made", status=201).json == {"ok": True}
    assert app.post("/own", status=200).json == {"ok": True}  # a tuple's own status wins
    assert app.post("/typed", status=201).json == {"id": 1, "title": "t"}
    assert app.delete("/gone", status=204).body == b""


# -- where validation runs, and what it leaves alone ---------------------------------------------


def require_token(next_handler: Any) -> Any:
    def handler(request: dict[str, Any]) -> Any:
        if request["headers"].get("Authorization") != "Bearer ok":
            abort(401, "token required")
        return next_handler(request)

    return handler


def test_route_and_group_middleware_answer_before_validation(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler("POST /todos", echo_body, require_token, body=NewTodo)
    api = server.group("/api", require_token)
    api.post("/todos", body=NewTodo)(echo_body)

    for path in ("/todos", "/api/todos"):
        app.post(path, "not json", status=401)
        app.post(path, "{", content_type="application/json", status=401)
        app.post_json(path, {"title": ""}, status=401)
        app.post_json(path, {"title": ""}, headers={"Authorization": "Bearer ok"}, status=422)


def test_every_registration_form_takes_the_declarations(
    server: Server, app: webtest.TestApp
) -> None:
    api = server.group("/api")
    server.register("PUT /a", body=Point, status=202)(echo_body)
    server.patch("/b", body=Point, status=202)(echo_body)
    api.register_handler("PUT /c", echo_body, body=Point, status=202)
    api.group("/v1").put("/d", body=Point, status=202)(echo_body)
    for path in ("/a", "/api/c", "/api/v1/d"):
        assert app.put_json(path, {"x": 1, "y": 2}, status=202).json["type"] == "Point"
    app.patch_json("/b", {"x": 1}, status=422)


def test_an_errorhandler_for_422_gets_the_errors(server: Server, app: webtest.TestApp) -> None:
    @server.errorhandler(422)
    def unprocessable(request: dict[str, Any], error: Any) -> Any:
        return {"problems": [".".join(map(str, e["loc"])) for e in error.errors]}

    server.register_handler("POST /points", echo_body, body=Point)
    assert app.post_json("/points", {}, status=422).json == {"problems": ["body.x", "body.y"]}


def test_a_route_that_declares_nothing_runs_its_handler_unwrapped(server: Server) -> None:
    def plain(request: dict[str, Any]) -> str:
        return "plain"

    server.register_handler("GET /plain", plain)
    server.register_handler("GET /typed", plain, returns=str)
    endpoints = {
        ep.spec: ep for resource in server.resources() for ep in resource.endpoints.values()
    }
    assert endpoints["GET /plain"].call is plain
    assert endpoints["GET /plain"].declared is None
    assert endpoints["GET /typed"].call is not plain
    app = webtest.TestApp(server)
    assert app.get("/plain").text == "plain"
    assert app.get("/plain").content_type == "text/plain"
    assert app.get("/typed").json == "plain"  # declared: JSON, as the document says


# -- mistakes caught at registration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("declarations", "error", "message"),
    [
        ({"status": "201"}, ValueError, r"route 'POST /x': status must be an int, got '201'"),
        ({"status": 99}, ValueError, r"route 'POST /x': status 99 is outside 100..599"),
        ({"status": 102}, ValueError, r"status=102 is not a final status"),
        ({"status": 204, "returns": Todo}, ValueError, r"a 204 answer has no body"),
        ({"body": Point(1, 2)}, TypeError, r"route 'POST /x': body=Point\(x=1, y=2\) is not a"),
        ({"returns": "Missing"}, TypeError, r"returns='Missing' is not a type pydantic can"),
    ],
)
def test_a_bad_declaration_is_refused_at_registration_naming_the_route(
    server: Server, declarations: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        server.register("POST /x", **declarations)
    assert server.routes() == []


@pytest.mark.parametrize("tags", ["todos", ["todos", ""], [1]])
def test_group_tags_must_be_a_list_of_strings(server: Server, tags: Any) -> None:
    with pytest.raises(ValueError, match=r"group '/api': tags must be a list of non-empty strings"):
        server.group("/api", tags=tags)


def test_without_pydantic_declaring_a_type_names_the_extra() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None  # what an environment without the extra imports
        from microwsgi import Server
        server = Server()
        server.register_handler("POST /made", lambda request: {"ok": True}, status=201)
        try:
            server.register_handler("POST /todos", lambda request: {}, body=dict, returns=list)
        except ImportError as exc:
            print(exc)
        import webtest
        print(webtest.TestApp(server).post("/made").status)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == [
        "route 'POST /todos' declares body=dict, returns=list, which needs pydantic v2: "
        "pip install 'microwsgi[validation]'",
        "201 Created",
    ]
