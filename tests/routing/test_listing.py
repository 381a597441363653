"""The route listing: `server.routes()` and the `microwsgi routes APP [--json]` command."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tools import run_command

from microwsgi import Server
from microwsgi.middleware import cors, request_id


def handler(request: dict[str, Any]) -> str:
    return "ok"


def tagged(tag: str) -> Any:
    def middleware(next_handler: Any) -> Any:
        return next_handler

    middleware.__name__ = tag
    return middleware


class Endpoint:
    def __call__(self, request: dict[str, Any]) -> str:
        return "instance"


def test_routes_lists_every_route_sorted_by_path(server: Server, tmp_path: Path) -> None:
    # A static folder's handler is its factory, wherever it lives, and the folder.
    static = re.compile(rf"microwsgi\.\w+\.static_handler\({re.escape(repr(str(tmp_path)))}\)")
    server.before_all(tagged("timing"))
    api = server.group("/api", tagged("auth"))
    v1 = api.group("/v1", [tagged("v1"), cors()])
    v1.get("/notes/:id<int>", tagged("own"))(handler)
    v1.put("/notes/:id<int>", tagged("own"))(handler)  # another middleware object: own entry
    server.register_handler("GET /b", handler, name="bee")
    server.register_handler("POST /b", handler, name="bee")
    server.register_handler("DELETE /b", handler, name="bee")
    server.register_handler("* /any", Endpoint())
    server.register_handler("GET /p", functools.partial(handler))
    server.static("/static", str(tmp_path))
    server.mount("/legacy", Server())
    routes = server.routes()
    assert static.fullmatch(routes[-1]["handler"])
    routes[-1]["handler"] = "static handler"
    assert routes == [
        {
            "verbs": ["*"],
            "path": "/any",
            "name": None,
            "handler": f"{__name__}.Endpoint",
            "middleware": ["timing"],
        },
        {
            "verbs": ["GET"],
            "path": "/api/v1/notes/:id<int>",
            "name": "handler",
            "handler": f"{__name__}.handler",
            "middleware": ["timing", "auth", "v1", "CorsMiddleware", "own"],
        },
        {
            "verbs": ["PUT"],
            "path": "/api/v1/notes/:id<int>",
            "name": "handler",
            "handler": f"{__name__}.handler",
            "middleware": ["timing", "auth", "v1", "CorsMiddleware", "own"],
        },
        {
            "verbs": ["GET", "POST", "DELETE"],
            "path": "/b",
            "name": "bee",
            "handler": f"{__name__}.handler",
            "middleware": ["timing"],
        },
        {
            "verbs": ["*"],
            "path": "/legacy",
            "name": None,
            "handler": "microwsgi.app.Server",
            "middleware": [],  # before-all middleware does not wrap mounted apps
        },
        {
            "verbs": ["GET"],
            "path": "/p",
            "name": None,
            "handler": f"functools.partial({__name__}.handler)",
            "middleware": ["timing"],
        },
        {
            "verbs": ["GET"],
            "path": "/static/*path",
            "name": "static",
            "handler": "static handler",
            "middleware": ["timing"],
        },
    ]


def test_shared_middleware_and_handler_make_one_entry(server: Server) -> None:
    auth = tagged("auth")
    for verb in ("GET", "PATCH", "POST"):
        server.register_handler(f"{verb} /x", handler, [auth])
    server.register_handler("DELETE /x", handler)  # other middleware: an entry of its own
    (merged, alone) = server.routes()
    assert merged["verbs"] == ["GET", "POST", "PATCH"] and merged["middleware"] == ["auth"]
    assert alone["verbs"] == ["DELETE"] and alone["middleware"] == []


def test_ready_made_middleware_are_named_after_their_factories(server: Server) -> None:
    server.before_all(request_id())
    server.get("/x")(handler)
    assert server.routes()[0]["middleware"] == ["request_id_middleware"]


def test_no_routes_is_an_empty_list() -> None:
    assert Server().routes() == []


# -- the command ----------------------------------------------------------------------------

APP = textwrap.dedent(
    """
    from microwsgi import Server

    server = Server()
    api = server.group("/api")

    def auth(next):
        return next

    @api.get("/notes/:id<int>", auth)
    def get_note(request):
        return {}

    @server.register("GET /")
    def index(request):
        return "home"

    server.mount("/wsgi", lambda environ, start_response: [])

    def plain(environ, start_response):
        return []
    """
)


def routes_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "listed.py").write_text(APP)
    return run_command("routes", *args, cwd=tmp_path)


def test_command_prints_one_line_per_route(tmp_path: Path) -> None:
    done = routes_command(tmp_path, "listed:server")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["VERBS", "PATH", "NAME", "HANDLER", "MIDDLEWARE"]
    assert [line.split() for line in lines[1:]] == [
        ["GET", "/", "index", "listed.index", "-"],
        ["GET", "/api/notes/:id<int>", "get_note", "listed.get_note", "auth"],
        ["*", "/wsgi", "-", "listed.<lambda>", "-"],
    ]
    # Columns line up: every row's path starts where the header's does.
    starts = {line.index("/") for line in lines[1:]}
    assert starts == {lines[0].index("PATH")}


def test_command_json(tmp_path: Path) -> None:
    done = routes_command(tmp_path, "listed:server", "--json")
    assert done.returncode == 0, done.stderr
    routes = json.loads(done.stdout)
    assert [set(route) for route in routes] == [
        {"verbs", "path", "name", "handler", "middleware"}
    ] * 3
    assert routes[1] == {
        "verbs": ["GET"],
        "path": "/api/notes/:id<int>",
        "name": "get_note",
        "handler": "listed.get_note",
        "middleware": ["auth"],
    }


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("listed:plain", "listed:plain is a function, not a microwsgi Server"),
        ("listed:nothing", "has no attribute 'nothing'"),
        ("missing_module:server", "no such module"),
    ],
)
def test_command_errors_are_one_line(tmp_path: Path, reference: str, message: str) -> None:
    done = routes_command(tmp_path, reference)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("microwsgi: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1
