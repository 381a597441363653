"""Every example in examples/ driven through WebTest, as its README section describes it.

Each test loads a fresh copy of the example module, so in-memory state (the to-do store) never
leaks from one test into another.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import tools
from webtest import TestApp
from werkzeug.test import Client, create_environ

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LoadExample = Callable[[str], ModuleType]
JSON = "application/json"


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> LoadExample:
    loaded = 0

    def load(name: str) -> ModuleType:
        nonlocal loaded
        loaded += 1
        module_name = f"_example_{name}_{loaded}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Registered while the test runs: Flask finds its root path through sys.modules.
        monkeypatch.setitem(sys.modules, module_name, module)
        with tools.extras_may_be_missing(f"examples/{name}.py"):
            spec.loader.exec_module(module)
        return module

    return load


# -- hello.py ----------------------------------------------------------------------------------


def test_hello(load_example: LoadExample) -> None:
    app = TestApp(load_example("hello").server)
    assert app.get("/hello").json == {"message": "Hello, World!"}
    assert app.get("/hello/ada").json == {"message": "Hello, ada!"}
    assert app.get("/healthz").json == {"status": "ok", "checks": {}}
    assert app.get("/hello/ada?n=2").json == {"message": "Hello, ada! Hello, ada!"}
    refused = app.get("/hello/ada?n=lots", status=400).json
    assert refused["message"] == "n must be a whole number from 1 to 100"


# -- todos.py ----------------------------------------------------------------------------------


@pytest.fixture
def todos(load_example: LoadExample) -> TestApp:
    return TestApp(load_example("todos").server)


def test_todos_crud(todos: TestApp) -> None:
    assert todos.get("/todos").json == []

    created = todos.post_json("/todos", {"title": "write tests"}, status=201)
    todo = created.json
    assert todo == {"id": "1", "title": "write tests", "checked": False}
    assert created.headers["Location"] == "/todos/1"
    assert todos.get("/todos/1").json == todo

    assert todos.put("/todos/1").json["checked"] is True
    todos.post_json("/todos", {"title": "deploy"}, status=201)
    assert [t["title"] for t in todos.get("/todos?checked=true").json] == ["write tests"]
    assert [t["title"] for t in todos.get("/todos?checked=false").json] == ["deploy"]
    assert len(todos.get("/todos").json) == 2

    assert todos.delete("/todos/1", status=204).body == b""
    todos.get("/todos/1", status=404)
    assert [t["id"] for t in todos.get("/todos").json] == ["2"]


# Not a to-do: JSON of the wrong shape, which the NewTodo model refuses (a 422 listing why).
NOT_A_TODO = ["[1, 2]", "{}", '{"title": "   "}', '{"title": 42}']
NOT_A_LOGIN = ['{"username": "alice"}', '"alice"', "not json"]
WRONG_LOGIN = ['{"username": "alice", "password": "wrong"}', '{"username": "bob", "password": "x"}']
ALICE = '{"username": "alice", "password": "wonderland"}'
# (example, path, body, content type, the status it is refused with)
BAD_INPUT = [
    ("todos", "/todos", "not json", JSON, 400),
    *[("todos", "/todos", body, JSON, 422) for body in NOT_A_TODO],
    ("todos", "/todos", '{"title": "as a form"}', "application/x-www-form-urlencoded", 415),
    *[("auth", "/login", body, JSON, 400) for body in NOT_A_LOGIN],
    *[("auth", "/login", body, JSON, 401) for body in WRONG_LOGIN],
    ("auth", "/login", ALICE, "text/plain", 415),
]


@pytest.mark.parametrize(("example", "path", "body", "content_type", "status"), BAD_INPUT)
def test_bad_input_is_refused_in_the_error_shape(
    load_example: LoadExample, example: str, path: str, body: str, content_type: str, status: int
) -> None:
    app = TestApp(load_example(example).server)
    answer = app.post(path, body, content_type=content_type, status=status)
    # The one error shape; a 422 adds the list of what does not fit.
    shape = {"status", "error", "message", *(["errors"] if status == 422 else [])}
    assert set(answer.json) == shape
    assert answer.json["status"] == status


def test_todos_refused_input_stores_nothing(todos: TestApp) -> None:
    for example, path, body, content_type, status in BAD_INPUT:
        if example == "todos":
            todos.post(path, body, content_type=content_type, status=status)
    assert todos.get("/todos").json == []


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_todos_unknown_id_is_404(todos: TestApp, method: str) -> None:
    answer = getattr(todos, method)("/todos/99", status=404)
    assert answer.json == {"status": 404, "error": "Not Found", "message": "no to-do with id '99'"}


def test_todos_store_is_thread_safe(load_example: LoadExample) -> None:
    # Eight threads create at once through the WSGI app; every id must be handed out exactly once.
    server = load_example("todos").server
    start = threading.Barrier(8)
    errors: list[int] = []

    def create_many() -> None:
        client = Client(server)
        start.wait(10)
        for i in range(50):
            answer = client.post("/todos", json={"title": f"t{i}"})
            if answer.status_code != 201:
                errors.append(answer.status_code)

    threads = [threading.Thread(target=create_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    ids = [t["id"] for t in TestApp(server).get("/todos").json]
    assert len(ids) == len(set(ids)) == 400


# -- auth.py -----------------------------------------------------------------------------------


@pytest.fixture
def auth_module(load_example: LoadExample) -> ModuleType:
    return load_example("auth")


@pytest.fixture
def auth(auth_module: ModuleType) -> TestApp:
    return TestApp(auth_module.server)


def login(app: TestApp, username: str = "alice", password: str = "wonderland") -> str:
    answer = app.post_json("/login", {"username": username, "password": password})
    assert answer.json["token_type"] == "Bearer"
    token: str = answer.json["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_auth_login_then_protected_routes(auth: TestApp) -> None:
    token = login(auth)
    assert auth.get("/me", headers=bearer(token)).json == {"user": "alice"}
    assert auth.get("/hello", headers=bearer(token)).text == "Hello alice!"
    assert auth.get("/ping").json == {"resp": "pong"}


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic YWxpY2U6d29uZGVybGFuZA==", "Bearer not-a-token"],
)
def test_auth_refuses_missing_or_malformed_tokens(auth: TestApp, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = auth.get("/me", headers=headers, status=401)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json["status"] == 401 and "user" not in answer.json


def test_auth_refuses_tampered_and_foreign_tokens(auth: TestApp, auth_module: ModuleType) -> None:
    token = login(auth)
    payload, _, signature = token.rpartition(".")
    tampered = f"{payload}.{signature[::-1]}"
    assert auth.get("/me", headers=bearer(tampered), status=401).json["message"] == "invalid token"

    from itsdangerous import URLSafeTimedSerializer

    foreign = URLSafeTimedSerializer("another key", salt="microwsgi-example-auth")
    forged = foreign.dumps({"user": "alice"})
    auth.get("/me", headers=bearer(forged), status=401)


def test_auth_refuses_expired_tokens(
    auth: TestApp, auth_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = login(auth)
    # Any token is older than a negative maximum age: expiry without waiting for the clock.
    monkeypatch.setattr(auth_module, "TOKEN_MAX_AGE", -1)
    answer = auth.get("/me", headers=bearer(token), status=401)
    assert answer.json["message"] == "token expired"


# -- mounted.py --------------------------------------------------------------------------------


def test_mounted_serves_both_apps(load_example: LoadExample) -> None:
    app = TestApp(load_example("mounted").server)
    assert app.get("/").json == {"framework": "microwsgi", "flask": "/flask/"}
    hello = app.get("/hello/ada").json
    assert hello == {"message": "Hello, ada!", "url": "http://localhost/hello/ada"}

    flask = app.get("/flask/").json
    assert flask == {"framework": "flask", "greet": "/flask/greet/ada"}
    assert app.get(flask["greet"]).json == {
        "message": "Hello, ada!",
        "self": "/flask/greet/ada",
    }
    app.get("/flask/no-such-page", status=404)


# -- streaming.py ------------------------------------------------------------------------------


@pytest.fixture
def streaming(load_example: LoadExample) -> TestApp:
    return TestApp(load_example("streaming").server)


def test_streaming_count_is_sent_line_by_line(load_example: LoadExample) -> None:
    # Straight through the WSGI interface: WebTest would join the chunks and count them.
    server = load_example("streaming").server
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body = server(
        create_environ("/count", query_string="n=3"),
        lambda status, headers, exc_info=None: started.append((status, headers)),
    )
    try:
        chunks = list(body)
    finally:
        getattr(body, "close", lambda: None)()
    status, headers = started[0]
    names = {name.lower(): value for name, value in headers}
    assert status == "200 OK"
    assert chunks == [b"1\n", b"2\n", b"3\n"]  # one chunk per line, as produced
    assert "content-length" not in names
    assert names["content-type"] == "text/plain; charset=utf-8"
    assert names["x-accel-buffering"] == "no"


@pytest.mark.parametrize(("query", "lines"), [("n=abc", 10), ("n=-4", 0), ("", 10)])
def test_streaming_count_bounds_its_input(streaming: TestApp, query: str, lines: int) -> None:
    assert streaming.get(f"/count?{query}").text.count("\n") == lines


def test_streaming_report_is_a_csv_download(streaming: TestApp) -> None:
    answer = streaming.get("/report.csv?rows=3")
    assert answer.text.splitlines() == ["n,square,cube", "1,1,1", "2,4,8", "3,9,27"]
    assert answer.content_type == "text/csv"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="report.csv"'


def test_streaming_source_is_a_file_download(streaming: TestApp) -> None:
    source = (EXAMPLES / "streaming.py").read_bytes()
    answer = streaming.get("/source")
    assert answer.body == source
    assert "attachment" in answer.headers["Content-Disposition"]
    assert "streaming.py" in answer.headers["Content-Disposition"]
    etag = answer.headers["ETag"]

    streaming.get("/source", headers={"If-None-Match": etag}, status=304)
    partial = streaming.get("/source", headers={"Range": "bytes=0-9"}, status=206)
    assert partial.body == source[:10]


# -- library.py + library_books.py: one app in two modules, with route groups -----------------

EDITOR = {"Authorization": "Bearer editor-token"}


@pytest.fixture
def library(load_example: LoadExample, monkeypatch: pytest.MonkeyPatch) -> TestApp:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # library.py imports library_books beside it
    return TestApp(load_example("library").server)


def test_library_home_links_are_built_from_route_names(library: TestApp) -> None:
    links = {
        "books": "/api/v1/books",
        "first_book": "/api/v1/books/1",
        "dune": "/api/v1/books/dune",
        "stats": "/admin/stats",
    }
    assert library.get("/").json == links
    assert library.get(links["first_book"]).json["title"] == "Dune"
    assert library.get(links["dune"]).json["id"] == 1


def test_library_books_by_id_or_by_slug(library: TestApp) -> None:
    books = library.get("/api/v1/books").json
    assert [(b["id"], b["slug"], b["url"]) for b in books] == [
        (1, "dune", "/api/v1/books/1"),
        (2, "solaris", "/api/v1/books/2"),
    ]
    assert library.get("/api/v1/books/2").json["title"] == "Solaris"  # the <int> route
    assert library.get("/api/v1/books/solaris").json["id"] == 2  # the untyped one
    no_such_book = {"status": 404, "error": "Not Found", "message": "no such book"}
    assert library.get("/api/v1/books/9", status=404).json == no_such_book
    assert library.get("/api/v1/books/nope", status=404).json == no_such_book


def test_library_editing_is_behind_the_token(library: TestApp) -> None:
    new = {"title": "The Left Hand of Darkness"}
    library.post_json("/api/v1/books", new, status=401)
    created = library.post_json("/api/v1/books", new, headers=EDITOR, status=201)
    assert created.json["slug"] == "the-left-hand-of-darkness"
    assert created.headers["Location"] == "/api/v1/books/3"
    assert library.get("/api/v1/books/the-left-hand-of-darkness").json["id"] == 3
    library.post_json("/api/v1/books", {"title": " "}, headers=EDITOR, status=400)
    library.delete("/api/v1/books/3", status=401)
    library.delete("/api/v1/books/3", headers=EDITOR, status=204)
    library.delete("/api/v1/books/3", headers=EDITOR, status=404)
    # DELETE exists for ids only: a slug path has no DELETE route.
    refused = library.delete("/api/v1/books/dune", headers=EDITOR, status=405)
    assert refused.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert library.get("/admin/stats", status=401)
    assert library.get("/admin/stats", headers=EDITOR).json == {"routes": 7}


def test_library_middleware_by_group(library: TestApp) -> None:
    origin = {"Origin": "https://reader.example"}
    api = library.get("/api/v1/books", headers=origin)
    assert api.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in library.get("/", headers=origin).headers
    # The group's cors() answers preflights for every path under /api.
    preflight = {**origin, "Access-Control-Request-Method": "DELETE"}
    answer = library.options("/api/v1/books/1", headers=preflight, status=204)
    assert answer.headers["Access-Control-Allow-Methods"]
    # Before-all middleware wraps everything, 404s included.
    for url, status in (("/", 200), ("/api/v1/books", 200), ("/nowhere", 404)):
        assert library.get(url, status=status).headers["Server-Timing"].startswith("app;dur=")
