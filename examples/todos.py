"""PyMicroHTTP's CRUD example: a to-do list kept in memory.

Run it:
    python examples/todos.py                      # built-in server, localhost:8080 (or $HOST:$PORT)
    gunicorn --chdir examples todos:server        # or under gunicorn

Try it:
    curl localhost:8080/todos -H 'Content-Type: application/json' -d '{"title": "write the tests"}'
    curl localhost:8080/todos
    curl -X PUT localhost:8080/todos/1            # toggles "checked"
    curl 'localhost:8080/todos?checked=true'
    curl -X DELETE localhost:8080/todos/1
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

from microwsgi import Server, abort

Todo = dict[str, Any]


class TodoStore:
    """To-dos in a dict, one lock around every access.

    The lock is what makes this safe under gunicorn's gthread worker or any threaded server, where
    two requests may create or toggle at the same moment. Callers get copies, never the stored
    dicts, so nothing changes under a response while it is being serialised.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._todos: dict[str, Todo] = {}
        self._ids = itertools.count(1)

    def list(self, checked: bool | None = None) -> list[Todo]:
        with self._lock:
            return [
                dict(todo)
                for todo in self._todos.values()
                if checked is None or todo["checked"] == checked
            ]

    def get(self, todo_id: str) -> Todo | None:
        with self._lock:
            todo = self._todos.get(todo_id)
            return dict(todo) if todo else None

    def create(self, title: str) -> Todo:
        with self._lock:
            todo_id = str(next(self._ids))
            todo: Todo = {"id": todo_id, "title": title, "checked": False}
            self._todos[todo_id] = todo
            return dict(todo)

    def toggle(self, todo_id: str) -> Todo | None:
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


def found(todo: Todo | None, todo_id: str) -> Todo:
    if todo is None:
        abort(404, f"no to-do with id {todo_id!r}")
    return todo


@server.register("GET /todos")
def list_todos(request: dict[str, Any]) -> list[Todo]:
    checked = request["query"].get("checked", "")
    if not checked:
        return store.list()
    return store.list(checked=checked not in ("0", "false"))


@server.register("GET /todos/:id")
def get_todo(request: dict[str, Any]) -> Todo:
    todo_id = request["params"]["id"]
    return found(store.get(todo_id), todo_id)


@server.register("POST /todos")
def create_todo(request: dict[str, Any]) -> Any:
    # request["json"] is the parsed body when it is sent as JSON (invalid JSON is already a
    # 400), None for any other content type.
    data = request["json"]
    if data is None:
        abort(415, "send the to-do as JSON, with Content-Type: application/json")
    title = data.get("title") if isinstance(data, dict) else None
    if not isinstance(title, str) or not title.strip():
        abort(400, 'please provide a to-do title: {"title": "..."}')
    todo = store.create(title.strip())
    return todo, 201, {"Location": f"/todos/{todo['id']}"}


@server.register("PUT /todos/:id")
def toggle_todo(request: dict[str, Any]) -> Todo:
    todo_id = request["params"]["id"]
    return found(store.toggle(todo_id), todo_id)


@server.register("DELETE /todos/:id")
def delete_todo(request: dict[str, Any]) -> None:
    todo_id = request["params"]["id"]
    if not store.delete(todo_id):
        abort(404, f"no to-do with id {todo_id!r}")


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
