"""The book routes of examples/library.py, kept in a module of their own.

`add_routes(books, editors)` registers them on whatever group it is given, the way a Flask
blueprint is registered on an app: the module knows nothing of the prefix it ends up under
(``/api/v1/books`` in library.py) nor of the middleware in front of it. Each call keeps its own
in-memory catalogue.

Two routes share a position with different types: ``/:book_id<int>`` takes ``/books/1`` and the
untyped ``/:slug`` takes ``/books/dune``; typed parameters are tried before untyped ones.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from microwsgi import Group, abort

Book = dict[str, Any]


class Catalogue:
    """Books by id, one lock around every access; callers get copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[int, Book] = {}
        self._next_id = 1
        for title in ("Dune", "Solaris"):
            self.add(title)

    def add(self, title: str) -> Book:
        with self._lock:
            book = {"id": self._next_id, "title": title, "slug": slugify(title)}
            self._books[book["id"]] = book
            self._next_id += 1
            return dict(book)

    def all(self) -> list[Book]:
        with self._lock:
            return [dict(book) for book in self._books.values()]

    def get(self, book_id: int) -> Book | None:
        with self._lock:
            book = self._books.get(book_id)
            return dict(book) if book else None

    def by_slug(self, slug: str) -> Book | None:
        with self._lock:
            found = [book for book in self._books.values() if book["slug"] == slug]
            return dict(found[0]) if found else None

    def remove(self, book_id: int) -> bool:
        with self._lock:
            return self._books.pop(book_id, None) is not None


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "book"


def found(book: Book | None) -> Book:
    if book is None:
        abort(404, "no such book")
    return book


def add_routes(books: Group, editors: Callable[..., Any]) -> None:
    """Register the book routes on `books`; adding and removing go behind `editors`."""
    catalogue = Catalogue()
    editing = books.group("", editors)  # no prefix of its own: it only adds middleware

    @books.get("")
    def list_books(request: dict[str, Any]) -> list[Book]:
        return [with_link(request, book) for book in catalogue.all()]

    @books.get("/:book_id<int>")
    def get_book(request: dict[str, Any]) -> Any:
        book = catalogue.get(request["params"]["book_id"])  # already an int
        return with_link(request, found(book))

    @books.get("/:slug")
    def get_book_by_slug(request: dict[str, Any]) -> Any:
        book = catalogue.by_slug(request["params"]["slug"])
        return with_link(request, found(book))

    @editing.post("")
    def add_book(request: dict[str, Any]) -> Any:
        data = request["json"]
        title = data.get("title") if isinstance(data, dict) else None
        if not isinstance(title, str) or not title.strip():
            abort(400, 'send {"title": "..."} as JSON, with Content-Type: application/json')
        book = with_link(request, catalogue.add(title.strip()))
        return book, 201, {"Location": book["url"]}

    @editing.delete("/:book_id<int>")
    def remove_book(request: dict[str, Any]) -> None:
        if not catalogue.remove(request["params"]["book_id"]):
            abort(404, "no such book")


def with_link(request: dict[str, Any], book: Book) -> Book:
    # Built from the route's name, so it stays right under any prefix and any mount point.
    return {**book, "url": request["url_for"]("get_book", book_id=book["id"])}
