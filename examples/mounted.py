"""microwsgi and Flask side by side, under one WSGI server.

The microwsgi ``server`` answers everything except ``/flask``, which it hands to a Flask app with
``server.mount``: the Flask app sees SCRIPT_NAME=/flask and its own paths in PATH_INFO, so its
``url_for`` builds URLs that include the prefix. An existing Flask app can move over a route at a
time this way, or the other way round.

Run it:
    python examples/mounted.py                    # built-in server, localhost:8080 (or $HOST:$PORT)
    gunicorn --chdir examples mounted:server

Try it:
    curl localhost:8080/                          # microwsgi
    curl localhost:8080/flask/                    # Flask
    curl localhost:8080/flask/greet/ada           # Flask, with a URL it built itself
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, url_for

from microwsgi import Server

flask_app = Flask(__name__)


@flask_app.get("/")
def flask_index() -> dict[str, str]:
    return {"framework": "flask", "greet": url_for("flask_greet", name="ada")}


@flask_app.get("/greet/<name>")
def flask_greet(name: str) -> dict[str, str]:
    return {"message": f"Hello, {name}!", "self": url_for("flask_greet", name=name)}


server = Server()


@server.register("GET /")
def index(request: dict[str, Any]) -> dict[str, str]:
    return {"framework": "microwsgi", "flask": "/flask/"}


@server.register("GET /hello/:name")
def hello(request: dict[str, Any]) -> dict[str, str]:
    return {"message": f"Hello, {request['params']['name']}!", "url": request["url"]}


server.mount("/flask", flask_app)


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
