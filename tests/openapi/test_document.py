"""The OpenAPI document: `server.openapi()` and `microwsgi openapi APP`.

Every document built here is checked by openapi-spec-validator (OpenAPI 3.1), then read for its
paths, parameters, operation ids, tags, request bodies, responses and component schemas.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import tools
from tools import run_command

from microwsgi import Server

tools.require_extra("pydantic")
tools.require_extra("openapi_spec_validator")
from openapi_spec_validator import OpenAPIV31SpecValidator  # noqa: E402 - after require_extra
from pydantic import BaseModel, Field  # noqa: E402 - after require_extra


class NewNote(BaseModel):
    text: str


class Note(BaseModel):
    id: int
    text: str


@dataclasses.dataclass
class NoteQuery:
    q: str
    tag: list[str] = dataclasses.field(default_factory=list)
    limit: int = 10


def valid(document: dict[str, Any]) -> dict[str, Any]:
    OpenAPIV31SpecValidator(document).validate()  # raises, naming the problem
    assert document["openapi"].startswith("3.1.")
    return document


def handler(request: dict[str, Any]) -> Any:
    return {}


def test_paths_and_path_parameters_in_openapi_form(server: Server) -> None:
    server.converter("slug", "[a-z0-9-]+")
    server.register_handler("GET /", handler, name="home")
    server.register_handler("GET /items/:id<int>", handler, name="item")
    server.register_handler(
        "GET /at/:when<float>/:who<uuid>/:slug<slug>/:any/*rest", handler, name="at"
    )
    paths = valid(server.openapi())["paths"]
    assert list(paths) == ["/", "/at/{when}/{who}/{slug}/{any}/{rest}", "/items/{id}"]
    at = paths["/at/{when}/{who}/{slug}/{any}/{rest}"]["get"]
    schemas = {parameter["name"]: parameter["schema"] for parameter in at["parameters"]}
    assert schemas == {
        "when": {"type": "number"},
        "who": {"type": "string", "format": "uuid"},
        "slug": {"type": "string", "pattern": "^(?:[a-z0-9-]+)$"},
        "any": {"type": "string"},
        "rest": {"type": "string"},
    }
    [item] = paths["/items/{id}"]["get"]["parameters"]
    assert item == {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}


def test_only_the_applications_own_operations_are_documented(
    server: Server, tmp_path: Path
) -> None:
    server.register_handler("GET /notes", handler)
    server.register_handler("* /anything", handler)  # no OpenAPI method means "any"
    server.static("/static", str(tmp_path))
    server.mount("/flask", lambda environ, start_response: [])
    server.health()
    server.api_docs()
    document = valid(server.openapi())
    # The automatic HEAD and OPTIONS answers are no operations either.
    assert {path: list(item) for path, item in document["paths"].items()} == {"/notes": ["get"]}
    # The framework's own routes are served and listed all the same.
    listed = {route["path"] for route in server.routes()}
    assert {"/healthz", "/docs", "/openapi.json", "/static/*path", "/flask"} <= listed


def test_operation_ids_are_route_names_made_unique(server: Server) -> None:
    def show(request: dict[str, Any]) -> Any:
        """Show a note.

        The whole note, with its tags.
        """

    server.register_handler("GET /notes/:id", show)
    server.register_handler("DELETE /notes/:id", show)  # one name, two verbs
    server.group("/v2").register_handler("GET /notes/:id", show)  # the same name and verb again
    server.register_handler("GET /named", handler, name="the_name")
    server.register_handler("GET /lambda/:id", lambda request: "")
    document = valid(server.openapi())
    ids = {
        (verb, path): operation["operationId"]
        for path, item in document["paths"].items()
        for verb, operation in item.items()
    }
    assert ids == {
        ("get", "/lambda/{id}"): "get_lambda_id",
        ("get", "/named"): "the_name",
        ("get", "/notes/{id}"): "show_get",
        ("delete", "/notes/{id}"): "show_delete",
        ("get", "/v2/notes/{id}"): "show_get_2",
    }
    operation = document["paths"]["/notes/{id}"]["get"]
    assert operation["summary"] == "Show a note."
    assert operation["description"] == "The whole note, with its tags."


def test_tags_come_from_the_groups_inner_groups_adding_theirs(server: Server) -> None:
    api = server.group("/api", tags=["api"])
    api.group("/notes", tags=["notes", "api"]).register_handler("GET ", handler)
    api.group("/plain").register_handler("GET /x", handler)
    server.register_handler("GET /top", handler)
    paths = valid(server.openapi())["paths"]
    assert paths["/api/notes"]["get"]["tags"] == ["api", "notes"]
    assert paths["/api/plain/x"]["get"]["tags"] == ["api"]
    assert "tags" not in paths["/top"]["get"]


def test_declared_types_make_the_body_parameters_and_responses(server: Server) -> None:
    server.register_handler("POST /notes", handler, body=NewNote, returns=Note, status=201)
    server.register_handler("GET /notes", handler, query=NoteQuery, returns=list[Note])
    server.register_handler("GET /plain", handler)
    document = valid(server.openapi(title="Notes", version="2.1", description="A notebook."))
    assert document["info"] == {"title": "Notes", "version": "2.1", "description": "A notebook."}
    paths = document["paths"]
    error = {"$ref": "#/components/schemas/HTTPError"}
    invalid = {"$ref": "#/components/schemas/HTTPValidationError"}

    create = paths["/notes"]["post"]
    assert create["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewNote"}}},
    }
    responses = create["responses"]
    assert list(responses) == ["201", "422", "default"]
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Note"
    }
    assert responses["422"]["content"]["application/json"]["schema"] == invalid
    assert responses["default"]["content"]["application/json"]["schema"] == error

    listing = paths["/notes"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert {name: (p["in"], p["required"]) for name, p in parameters.items()} == {
        "q": ("query", True),  # no default: required
        "tag": ("query", False),
        "limit": ("query", False),
    }
    assert parameters["tag"]["schema"]["type"] == "array"
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Note"},
    }
    # A route that declares nothing: its success status, and the error shape for the rest.
    assert paths["/plain"]["get"]["responses"] == {
        "200": {"description": "OK"},
        "default": {"description": "An error", "content": {"application/json": {"schema": error}}},
    }
    # One component per model, however many routes use it; a query type is parameters only.
    components = document["components"]["schemas"]
    assert sorted(components) == ["HTTPError", "HTTPValidationError", "NewNote", "Note"]
    assert components["HTTPError"]["required"] == ["status", "error", "message"]


def test_a_model_named_like_the_error_shapes_keeps_its_name(server: Server) -> None:
    class HTTPError(BaseModel):
        code: int = Field(description="the application's own")

    server.register_handler("GET /e", handler, returns=HTTPError)
    components = valid(server.openapi())["components"]["schemas"]
    assert components["HTTPError"]["properties"]["code"]["description"] == "the application's own"
    assert "microwsgi.HTTPError" in components


def test_an_app_without_declared_types_needs_no_pydantic_for_its_document() -> None:
    script = textwrap.dedent(
        """
        import sys, json
        sys.modules["pydantic"] = None
        from microwsgi import Server
        server = Server()
        server.register_handler("GET /a/:id<int>", lambda request: "", status=202)
        print(json.dumps(server.openapi()["paths"]["/a/{id}"]["get"]["responses"]["202"]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == {"description": "Accepted"}


def test_two_routes_the_document_cannot_tell_apart_are_refused_naming_both(
    server: Server,
) -> None:
    # The router tries the typed one first; OpenAPI has one GET for /items/{id}, whatever its type.
    server.register_handler("GET /items/:id<int>", handler, name="by_number")
    server.register_handler("GET /items/:id", handler, name="by_slug")
    server.register_handler("POST /items/:id", handler, name="create")  # another verb: fine
    with pytest.raises(ValueError) as refused:
        server.openapi()
    message = str(refused.value)
    pair = re.match(r"(GET /items/\S+) and (GET /items/\S+) would be one operation", message)
    assert pair is not None, message
    assert sorted(pair.groups()) == ["GET /items/:id", "GET /items/:id<int>"]
    assert "Give one of them another path, or make them one route" in message


def test_the_same_path_with_other_types_under_other_verbs_is_documented(server: Server) -> None:
    server.register_handler("GET /items/:id<int>", handler, name="item")
    server.register_handler("DELETE /items/:id", handler, name="forget")
    operations = valid(server.openapi())["paths"]["/items/{id}"]
    assert operations["get"]["parameters"][0]["schema"] == {"type": "integer"}
    assert operations["delete"]["parameters"][0]["schema"] == {"type": "string"}


def test_command_prints_the_document(tmp_path: Path) -> None:
    (tmp_path / "notes.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel
            from microwsgi import Server

            class Note(BaseModel):
                text: str

            server = Server()
            server.register_handler("POST /notes", lambda request: {}, body=Note)
            """
        )
    )
    done = run_command("openapi", "notes.py", "--title", "Notes", "--version", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = valid(json.loads(done.stdout))
    assert document["info"] == {"title": "Notes", "version": "3"}
    assert list(document["paths"]) == ["/notes"]
    done = run_command("openapi", "notes:nothing", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("microwsgi: module 'notes' has no attribute 'nothing'")


def test_command_says_which_routes_the_document_cannot_tell_apart(tmp_path: Path) -> None:
    (tmp_path / "clash.py").write_text(
        "from microwsgi import Server\n"
        "server = Server()\n"
        "server.register_handler('GET /items/:id<int>', lambda request: {})\n"
        "server.register_handler('GET /items/:id', lambda request: {})\n"
    )
    done = run_command("openapi", "clash.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert re.match(
        r"microwsgi: GET /items/\S+ and GET /items/\S+ would be one operation", done.stderr
    )
    assert "Traceback" not in done.stderr


def test_command_refuses_an_app_that_is_not_a_server(tmp_path: Path) -> None:
    (tmp_path / "bare.py").write_text("def app(environ, start_response):\n    return []\n")
    done = run_command("openapi", "bare.py:app", cwd=tmp_path)
    assert done.returncode == 1
    assert "is a function, not a microwsgi Server" in done.stderr


def test_the_example_apps_document_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    done = run_command("openapi", "examples/todos.py", cwd=root)
    assert done.returncode == 0, done.stderr
    document = valid(json.loads(done.stdout))
    assert sorted(document["paths"]) == ["/todos", "/todos/{id}"]
