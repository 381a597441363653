"""microwsgi with other WSGI apps, both ways round, and URLs that respect SCRIPT_NAME.

Outside in: a Server mounted by werkzeug's DispatcherMiddleware, and inside a Flask app.
Inside out: Flask and a second Server mounted in a Server with `server.mount`. In every case the
inner app must see its own path in PATH_INFO, the prefix in SCRIPT_NAME, and build URLs (Flask's
url_for, request['url']) that include the prefix.
"""

from __future__ import annotations

from typing import Any

import tools
from webtest import TestApp
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from microwsgi import Server

tools.require_extra("flask")
from flask import Flask, url_for  # noqa: E402 - after require_extra
from flask import request as flask_request  # noqa: E402 - after require_extra


def micro_app(name: str = "micro") -> Server:
    server = Server()

    @server.register("GET /")
    def index(request: dict[str, Any]) -> dict[str, Any]:
        return {"app": name, "path": request["path"]}

    @server.register("GET /where/:thing")
    def where(request: dict[str, Any]) -> dict[str, Any]:
        environ = request["environ"]
        return {
            "app": name,
            "thing": request["params"]["thing"],
            "path": request["path"],
            "script_name": environ["SCRIPT_NAME"],
            "url": request["url"],
        }

    return server


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> dict[str, str]:
        return {"app": "flask", "self": url_for("index")}

    @app.get("/greet/<name>")
    def greet(name: str) -> dict[str, str]:
        return {
            "app": "flask",
            "self": url_for("greet", name=name),
            "external": url_for("greet", name=name, _external=True),
        }

    @app.post("/echo")
    def echo() -> dict[str, Any]:
        return {"got": flask_request.get_json()}

    return app


def plain_404(environ: dict[str, Any], start_response: Any) -> Any:
    return Response("outer 404", status=404)(environ, start_response)


# -- microwsgi inside others -------------------------------------------------------------------


def test_server_inside_dispatcher_middleware() -> None:
    app = TestApp(DispatcherMiddleware(plain_404, {"/api": micro_app()}))
    seen = app.get("/api/where/here?x=1").json
    assert seen == {
        "app": "micro",
        "thing": "here",
        "path": "/where/here",
        "script_name": "/api",
        "url": "http://localhost/api/where/here?x=1",
    }
    assert app.get("/api/").json == {"app": "micro", "path": "/"}
    # A miss below the prefix is microwsgi's own JSON 404; outside it, the outer app's.
    assert app.get("/api/nowhere", status=404).content_type == "application/json"
    assert app.get("/elsewhere", status=404).text == "outer 404"


def test_server_inside_flask() -> None:
    outer = flask_app()
    outer.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        outer.wsgi_app, {"/micro": micro_app()}
    )
    app = TestApp(outer)
    assert app.get("/").json == {"app": "flask", "self": "/"}
    seen = app.get("/micro/where/x").json
    assert (seen["script_name"], seen["path"]) == ("/micro", "/where/x")
    assert seen["url"] == "http://localhost/micro/where/x"


# -- others inside microwsgi -------------------------------------------------------------------


def host_with_mounts() -> Server:
    host = micro_app("host")
    host.mount("/flask", flask_app())
    host.mount("/v2", micro_app("v2"))
    return host


def test_flask_mounted_in_server_builds_prefixed_urls() -> None:
    app = TestApp(host_with_mounts())
    assert app.get("/flask/").json == {"app": "flask", "self": "/flask/"}
    greet = app.get("/flask/greet/ada").json
    assert greet["self"] == "/flask/greet/ada"
    assert greet["external"] == "http://localhost/flask/greet/ada"
    # The request body reaches the mounted app untouched.
    assert app.post_json("/flask/echo", {"n": [1, 2]}).json == {"got": {"n": [1, 2]}}


def test_second_server_mounted_in_server() -> None:
    app = TestApp(host_with_mounts())
    seen = app.get("/v2/where/caf%C3%A9").json
    assert seen == {
        "app": "v2",
        "thing": "café",
        "path": "/where/café",
        "script_name": "/v2",
        "url": "http://localhost/v2/where/café",  # an IRI, as werkzeug's Request.url
    }
    assert app.get("/v2/").json == {"app": "v2", "path": "/"}
    # The host's own routes are untouched by the mounts.
    assert app.get("/where/home").json["app"] == "host"
    assert app.get("/").json == {"app": "host", "path": "/"}


def test_mounts_nest_and_prefixes_add_up() -> None:
    # DispatcherMiddleware -> Server -> Flask: both prefixes end up in Flask's URLs.
    app = TestApp(DispatcherMiddleware(plain_404, {"/outer": host_with_mounts()}))
    greet = app.get("/outer/flask/greet/ada").json
    assert greet["self"] == "/outer/flask/greet/ada"
    assert greet["external"] == "http://localhost/outer/flask/greet/ada"
    seen = app.get("/outer/v2/where/x").json
    assert seen["script_name"] == "/outer/v2"
    assert seen["url"] == "http://localhost/outer/v2/where/x"
