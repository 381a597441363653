"""WSGI citizenship: validators, SCRIPT_NAME, mounting, wrapping `wsgi_app`, threads, the example.

Every response kind goes through both `wsgiref.validate.validator` and WebTest's lint. The
composition scenarios (Flask, Falcon... side by side) live in test_composition.py; here only
the mechanics: what SCRIPT_NAME and PATH_INFO the mounted app sees.
"""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
import tools
import webtest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import create_environ
from werkzeug.wrappers import Response

from microwsgi import HTTPError, Server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def streamed() -> Iterator[str]:
    yield "a"
    yield "é"


def raise_500(request: dict[str, Any]) -> Any:
    raise RuntimeError("boom")


def raise_403(request: dict[str, Any]) -> Any:
    raise HTTPError(403, "no")


KINDS: list[Any] = [
    pytest.param(lambda r: {"a": "é"}, 200, id="dict"),
    pytest.param(lambda r: [1, 2], 200, id="list"),
    pytest.param(lambda r: "text", 200, id="str"),
    pytest.param(lambda r: b"\x00", 200, id="bytes"),
    pytest.param(lambda r: bytearray(b"ba"), 200, id="bytearray"),
    pytest.param(lambda r: None, 204, id="none"),
    pytest.param(lambda r: ("made", 201), 201, id="tuple2"),
    pytest.param(lambda r: ({"id": 1}, 201, {"Location": "/1"}), 201, id="tuple3-dict"),
    pytest.param(
        lambda r: ("c", 200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]), 200, id="cookies"
    ),
    pytest.param(lambda r: ("<p>", 200, {"Content-Type": "text/html"}), 200, id="ctype"),
    pytest.param(lambda r: ("x", 304, {"ETag": '"1"'}), 304, id="304"),
    pytest.param(lambda r: ("dropped", 204), 204, id="204-with-body"),
    pytest.param(lambda r: Response("resp", status=202), 202, id="werkzeug-response"),
    pytest.param(lambda r: streamed(), 200, id="generator"),
    pytest.param(lambda r: iter([b"x", b"y"]), 200, id="iterator"),
    pytest.param(lambda r: iter(()), 200, id="empty-stream"),
    pytest.param(
        lambda r: (streamed(), 200, {"Content-Type": "text/event-stream"}), 200, id="stream-tuple"
    ),
    pytest.param(raise_500, 500, id="exception"),
    pytest.param(raise_403, 403, id="http-error"),
    pytest.param(lambda r: object(), 500, id="invalid-value"),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("handler", "status"), KINDS)
def test_every_response_kind_passes_both_validators(
    server: Server, validated: webtest.TestApp, handler: Any, status: int, method: str
) -> None:
    server.register_handler("GET /kind", handler)
    response = validated.request("/kind", method=method, expect_errors=True)
    assert response.status_int == status
    if method == "HEAD" or status in (204, 304):
        assert response.body == b""


def test_routing_answers_pass_both_validators(server: Server, validated: webtest.TestApp) -> None:
    server.register_handler("GET /x", lambda request: "x")
    assert validated.get("/nope", status=404).json["status"] == 404
    assert validated.post("/x", status=405).headers["Allow"]
    assert validated.options("/x", status=204).headers["Allow"]
    assert validated.head("/nope", status=404).body == b""
    assert validated.get("/%FF", status=400).json["status"] == 400


def test_request_body_reading_passes_the_validator(
    server: Server, validated: webtest.TestApp
) -> None:
    server.register_handler("POST /b", lambda request: {"body": request["body"]})
    server.register_handler("POST /f", lambda request: dict(request["form"]))
    server.register_handler("POST /j", lambda request: request["json"])
    assert validated.post("/b", "héllo".encode()).json == {"body": "héllo"}
    assert validated.post("/f", {"a": "1"}).json == {"a": "1"}
    assert validated.post_json("/j", {"k": [1]}).json == {"k": [1]}


# -- SCRIPT_NAME ----------------------------------------------------------------------------


def where(request: dict[str, Any]) -> dict[str, Any]:
    environ = request["environ"]
    return {
        "path": request["path"],
        "url": request["url"],
        "params": request["params"],
        "script_name": environ.get("SCRIPT_NAME", ""),
        "path_info": environ.get("PATH_INFO", ""),
    }


def test_mounted_under_a_prefix_by_dispatcher_middleware(server: Server) -> None:
    server.register_handler("GET /items/:id", where)
    server.register_handler("GET /", where)
    outer = DispatcherMiddleware(Response("outer", status=404), {"/app": server})
    app = webtest.TestApp(validator(outer))
    assert app.get("/app/items/3?x=1").json == {
        "path": "/items/3",
        "url": "http://localhost/app/items/3?x=1",
        "params": {"id": "3"},
        "script_name": "/app",
        "path_info": "/items/3",
    }
    assert app.get("/app/").json["path"] == "/"
    assert app.get("/items/3", status=404).text == "outer"  # not under the prefix
    assert app.get("/app/nope", status=404).json["message"] == "no route for GET /nope"


def test_mount_hosts_another_server(server: Server) -> None:
    inner = Server()
    inner.register_handler("* /items/:id", where)
    inner.register_handler("GET /", where)
    server.mount("/api", inner)
    server.register_handler("GET /items/:id", lambda request: "outer items")
    app = webtest.TestApp(validator(server))
    assert app.get("/api/items/9?q=1").json == {
        "path": "/items/9",
        "url": "http://localhost/api/items/9?q=1",
        "params": {"id": "9"},
        "script_name": "/api",
        "path_info": "/items/9",
    }
    assert app.delete("/api/items/9").json["path"] == "/items/9"  # every verb is handed over
    exact = app.get("/api").json
    assert (exact["script_name"], exact["path_info"], exact["path"]) == ("/api", "", "/")
    assert app.get("/api/").json["path_info"] == "/"
    assert app.get("/items/9").text == "outer items"
    assert app.get("/apix/items/9", status=404)
    assert app.get("/api/missing", status=404).json["message"] == "no route for GET /missing"


def test_mount_inside_dispatcher_middleware_and_nested_mounts() -> None:
    innermost = Server()
    innermost.register_handler("GET /leaf", where)
    middle = Server()
    middle.mount("/b", innermost)
    top = Server()
    top.mount("/a", middle)
    app = webtest.TestApp(DispatcherMiddleware(Response("x", status=404), {"/root": top}))
    body = app.get("/root/a/b/leaf").json
    assert body["script_name"] == "/root/a/b"
    assert body["path_info"] == "/leaf"
    assert body["url"] == "http://localhost/root/a/b/leaf"


def test_mount_with_a_non_ascii_prefix(server: Server) -> None:
    inner = Server()
    inner.register_handler("GET /x/:v", where)
    server.mount("/café", inner)
    body = webtest.TestApp(server).get("/caf%C3%A9/x/%C3%BC").json
    assert body["script_name"] == "/café".encode().decode("latin-1")  # WSGI strings
    assert body["path"] == "/x/ü"
    assert body["params"] == {"v": "ü"}


def test_mount_hosts_a_flask_app(server: Server) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        flask = tools.require_extra("flask")
    flask_app = flask.Flask(__name__)

    @flask_app.get("/")
    def index() -> dict[str, str]:
        return {"root": flask.request.script_root, "path": flask.request.path}

    @flask_app.post("/greet/<name>")
    def greet(name: str) -> dict[str, str]:
        return {
            "name": name,
            "self": flask.url_for("greet", name=name),
            "body": flask.request.get_data(as_text=True),
        }

    server.mount("/flask", flask_app)
    server.register_handler("GET /", lambda request: "microwsgi")
    app = webtest.TestApp(validator(server))
    assert app.get("/").text == "microwsgi"
    assert app.get("/flask/").json == {"root": "/flask", "path": "/"}
    assert app.post("/flask/greet/ada", b"hi").json == {
        "name": "ada",
        "self": "/flask/greet/ada",
        "body": "hi",
    }
    assert app.get("/flask/nope", status=404).content_type == "text/html"


def test_mounted_app_iterable_is_closed(server: Server) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"plain"

        def close(self) -> None:
            closed.append(True)

    def plain_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return Body()

    server.mount("/plain", plain_app)
    assert webtest.TestApp(validator(server)).get("/plain/x").text == "plain"
    assert closed == [True]


@pytest.mark.parametrize("prefix", ["/", "/api/", "/:x", "/a/*rest", "api", "", "/a b"])
def test_mount_refuses_bad_prefixes(server: Server, prefix: str) -> None:
    with pytest.raises(ValueError):
        server.mount(prefix, Server())


def test_mount_refuses_non_wsgi_and_clashes(server: Server) -> None:
    with pytest.raises(ValueError, match="not a WSGI callable"):
        server.mount("/x", "app")  # type: ignore[arg-type]
    server.register_handler("GET /taken", lambda request: "t")
    with pytest.raises(ValueError):
        server.mount("/taken", Server())
    server.mount("/api", Server())
    with pytest.raises(ValueError):
        server.register_handler("GET /api", lambda request: "clash")
    with pytest.raises(ValueError):
        server.register_handler("GET /api/*rest", lambda request: "clash")
    with pytest.raises(ValueError):
        server.mount("/api", Server())


# -- wrapping -------------------------------------------------------------------------------


def test_wsgi_app_can_be_wrapped_with_wsgi_middleware(server: Server) -> None:
    def stamp(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            def again(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                return start_response(status, [*headers, ("X-Wrapped", "1")], exc_info)

            return app(environ, again)

        return wrapped

    server.wsgi_app = stamp(server.wsgi_app)  # type: ignore[method-assign]
    server.wsgi_app = ProxyFix(server.wsgi_app, x_for=1)  # type: ignore[method-assign]
    server.register_handler("GET /ip", lambda request: request["remote_addr"])
    app = webtest.TestApp(validator(server))
    response = app.get(
        "/ip", headers={"X-Forwarded-For": "198.51.100.7"}, extra_environ={"REMOTE_ADDR": "::1"}
    )
    assert response.text == "198.51.100.7"
    assert response.headers["X-Wrapped"] == "1"
    assert app.get("/nope", status=404).headers["X-Wrapped"] == "1"


def test_server_keeps_no_request_state(server: Server) -> None:
    server.register_handler("POST /x/:n", lambda request: {"n": request["params"]["n"]})
    app = webtest.TestApp(server)
    app.get("/x/1", status=405)
    before = dict(vars(server))
    for n in range(5):
        assert app.post(f"/x/{n}", b"body").json == {"n": str(n)}
    assert vars(server).keys() == before.keys()
    assert all(vars(server)[key] is value for key, value in before.items())


# -- threads --------------------------------------------------------------------------------


def build_echo_server(built: list[str]) -> Server:
    server = Server()

    @server.before_all()
    def count(next_handler: Any) -> Any:
        built.append("chain")

        def handler(request: dict[str, Any]) -> Any:
            request["seen_by"] = threading.get_ident()
            return next_handler(request)

        return handler

    @server.register("POST /echo/:n")
    def echo(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "n": request["params"]["n"],
            "q": request["query"].get("q"),
            "body": request["body"],
            "header": request["headers"].get("X-N"),
            "same_thread": request["seen_by"] == threading.get_ident(),
        }

    return server


def call_echo(server: Server, n: int) -> tuple[str, dict[str, Any]]:
    environ = create_environ(
        f"/echo/{n}",
        method="POST",
        query_string=f"q=q{n}",
        data=f"body-{n}-é".encode(),
        headers={"X-N": str(n)},
        errors_stream=io.StringIO(),
    )
    statuses: list[str] = []
    body = server(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        payload = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return statuses[0], json.loads(payload)


def test_many_threads_on_one_fresh_server_get_their_own_answers() -> None:
    built: list[str] = []
    server = build_echo_server(built)
    workers, total = 16, 600
    start_together = threading.Barrier(workers)

    def one(n: int) -> tuple[int, tuple[str, dict[str, Any]]]:
        if n < workers:  # the first wave hits the uncompiled server at the same moment
            start_together.wait(timeout=30)
        return n, call_echo(server, n)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, range(total)))
    for n, (status, payload) in results:
        assert status == "200 OK"
        assert payload == {
            "n": str(n),
            "q": f"q{n}",
            "body": f"body-{n}-é",
            "header": str(n),
            "same_thread": True,
        }
    # The routes were compiled once, however many threads raced to be first.
    reference: list[str] = []
    call_echo(build_echo_server(reference), 0)
    assert len(built) == len(reference)


# -- the example ----------------------------------------------------------------------------


def test_examples_hello_through_webtest() -> None:
    spec = importlib.util.spec_from_file_location("hello_example", EXAMPLES / "hello.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.server, Server)
    app = webtest.TestApp(validator(module.server))
    assert app.get("/hello").json == {"message": "Hello, World!"}
    assert app.get("/hello/world").json == {"message": "Hello, world!"}
    assert app.get("/hello/caf%C3%A9?n=2").json == {"message": "Hello, café! Hello, café!"}
    assert app.get("/nope", status=404).json["status"] == 404
