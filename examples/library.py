"""A library API split across two modules with route groups.

This module builds the app: the groups, their middleware, and the home page; the book routes
live in library_books.py and are added to the ``/api/v1/books`` group from here, the way a
Flask blueprint is. Middleware runs outermost first: before-all, then each enclosing group's
from the outermost in, then the route's own.

    /                       links built with request['url_for'] (no URL written by hand)
    /api/...                every answer gets CORS headers; OPTIONS preflights are answered
    /api/v1/books...        library_books.py: list, get by id or by slug, add, remove
    /admin/stats            behind the editor token, like adding and removing books

Run it:
    python examples/library.py                    # built-in server, localhost:8080 (or $HOST:$PORT)
    gunicorn --chdir examples library:server      # or under gunicorn
    cd examples && microwsgi routes library:server   # the route table

Try it:
    curl localhost:8080/
    curl localhost:8080/api/v1/books
    curl localhost:8080/api/v1/books/1            # by id (an int)
    curl localhost:8080/api/v1/books/dune         # by slug
    curl -X POST localhost:8080/api/v1/books -H 'Authorization: Bearer editor-token' \\
         -H 'Content-Type: application/json' -d '{"title": "The Left Hand of Darkness"}'
    curl localhost:8080/admin/stats -H 'Authorization: Bearer editor-token'
"""

from __future__ import annotations

import os
import time
from typing import Any

import library_books

from microwsgi import Server, abort, cors, make_response

Handler = Any

server = Server()
EDITOR_TOKEN = os.environ.get("EDITOR_TOKEN", "editor-token")


@server.before_all()
def timing(next_handler: Handler) -> Handler:
    """Outermost: every answer, grouped or not (404s included), says how long it took."""

    def handler(request: dict[str, Any]) -> Any:
        started = time.perf_counter()
        response = make_response(next_handler(request), request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response

    return handler


def editors_only(next_handler: Handler) -> Handler:
    def handler(request: dict[str, Any]) -> Any:
        if request["headers"].get("Authorization") != f"Bearer {EDITOR_TOKEN}":
            abort(401, "editors only", headers={"WWW-Authenticate": "Bearer"})
        return next_handler(request)

    return handler


api = server.group("/api", cors(origins="*", headers=["Authorization", "Content-Type"]))
v1 = api.group("/v1")
library_books.add_routes(v1.group("/books"), editors_only)
admin = server.group("/admin", editors_only)


@admin.get("/stats")
def stats(request: dict[str, Any]) -> dict[str, Any]:
    return {"routes": len(server.routes())}


@server.get("/")
def home(request: dict[str, Any]) -> dict[str, str]:
    url_for = request["url_for"]
    return {
        "books": url_for("list_books"),
        "first_book": url_for("get_book", book_id=1),
        "dune": url_for("get_book_by_slug", slug="dune"),
        "stats": url_for("stats"),
    }


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
