"""PyMicroHTTP's CRUD example: a to-do list kept in memory, its input and output declared.

The models say what a request must send and what an answer holds: microwsgi validates the body
and the query string against them (a misfit is a 422 listing every problem), sends only the
fields `Todo` declares, and publishes the OpenAPI document at /openapi.json with an interactive
page at /docs (needs pydantic: pip install 'microwsgi[validation]').

Run it:
    python examples/todos.py                      # built-in server, localhost:8080 (or $HOST:$PORT)
    gunicorn --chdir examples todos:server        # or under gunicorn

Try it:
    curl localhost:8080/todos -H 'Content-Type: application/json' -d '{"title": "write the tests"}'
    curl localhost:8080/todos
    curl -X PUT localhost:8080/todos/1            # toggles "checked"
    curl 'localhost:8080/todos?checked=true'
    curl -X DELETE localhost:8080/todos/1
    open http://localhost:8080/docs               # the API, documented and tryable
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

from pydantic import BaseModel, Field

from microwsgi import Server, abort


class NewTodo(BaseModel):
    """What POST /todos takes."""

    title: str = Field(min_length=1, max_length=200, pattern=r"\S", examples=["write the tests"])


class Todo(BaseModel):
    """A to-do, as every answer shows it."""

    id: str
    title: str
    checked: bool


class TodoFilter(BaseModel):
    """GET /todos's query string."""

    checked: bool | None = Field(None, description="only the checked (or unchecked) to-dos")


Stored = dict[str, Any]


class TodoStore:
    """To-dos in a dict, one lock around every access.

    The lock is what makes this safe under gunicorn's gthread worker or any threaded server, where
    two requests may create or toggle at the same moment. Callers get copies, never the stored
    dicts, so nothing changes under a response while it is being serialised.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._todos: dict[str, Stored] = {}
        self._ids = itertools.count(1)

    def list(self, checked: bool | None = None) -> list[Stored]:
        with self._lock:
            return [
                dict(todo)
                for todo in self._todos.values()
                if checked is None or todo["checked"] == checked
            ]

    def get(self, todo_id: str) -> Stored | None:
        with self._lock:
            todo = self._todos.get(todo_id)
            return dict(todo) if todo else None

    def create(self, title: str) -> Stored:
        with self._lock:
            todo_id = str(next(self._ids))
            todo: Stored = {"id": todo_id, "title": title, "checked": False}
            self._todos[todo_id] = todo
            return dict(todo)

    def toggle(self, todo_id: str) -> Stored | None:
        with self._lock:
            todo = self._todos.get(todo_id)
            if todo is None:
                return None
            todo["checked"] = not todo["checked"]
            return dict(todo)

    def delete(self, todo_id: str) -> bool:
        with self._lock:
            return self._todos.pop(todo_id, None) is not None


store = TodoStore()
server = Server()


def found(todo: Stored | None, todo_id: str) -> Stored:
    if todo is None:
        abort(404, f"no to-do with id {todo_id!r}")
    return todo


@server.get("/todos", query=TodoFilter, returns=list[Todo])
def list_todos(request: dict[str, Any]) -> list[Stored]:
    """The to-dos, optionally only the checked or unchecked ones."""
    return store.list(checked=request["query_model"].checked)


@server.get("/todos/:id", returns=Todo)
def get_todo(request: dict[str, Any]) -> Stored:
    """One to-do."""
    todo_id = request["params"]["id"]
    return found(store.get(todo_id), todo_id)


@server.post("/todos", body=NewTodo, returns=Todo, status=201)
def create_todo(request: dict[str, Any]) -> Any:
    """Create a to-do; its URL is in the Location header."""
    todo = store.create(request["body_model"].title.strip())
    return todo, 201, {"Location": f"/todos/{todo['id']}"}


@server.put("/todos/:id", returns=Todo)
def toggle_todo(request: dict[str, Any]) -> Stored:
    """Toggle a to-do's checked flag."""
    todo_id = request["params"]["id"]
    return found(store.toggle(todo_id), todo_id)


@server.delete("/todos/:id", status=204)
def delete_todo(request: dict[str, Any]) -> None:
    """Delete a to-do."""
    todo_id = request["params"]["id"]
    if not store.delete(todo_id):
        abort(404, f"no to-do with id {todo_id!r}")


server.api_docs(title="To-dos", version="1.0.0")


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
