"""The decorator API's common mistakes, caught as early as they can be and named plainly.

At registration (raised by the ``register``/``register_handler``/``group``/``before_all`` call
itself): a middleware factory that does not return a handler. A factory can only tell what it
returns by being called, so each one is called here once with a stand-in ``next``; it is called
again when the chains are built. (``chains.check_middleware`` turns what a route was given into
a list of factories and asks for this check.) And, where one list shows the order, a middleware
placed outside one it must run inside (``csrf()`` before ``sessions(...)``); one whose order only
the compiled chain shows checks itself at its first request.

On the first request (and by ``start_server``), as warnings: a ``register(spec)`` never
applied to a function (the forgotten ``@``, which registers nothing). While serving, once per
route: a middleware that drops the answer ``next`` gave it (the forgotten
``return next(request)``, which would otherwise be a silent 204).

Where the warnings go is ``reporting.py``'s business; the route grammar is ``routing.py``'s.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from .reporting import report

if TYPE_CHECKING:
    from .chains import Middleware

__all__: list[str] = []


def _name(obj: object) -> str:
    """A function's name, or the class of a callable object (``cors(...)`` returns one)."""
    name = getattr(obj, "__qualname__", None)
    return str(name) if name is not None else f"{type(obj).__qualname__} object"


def _stand_in_next(request: dict[str, Any]) -> Any:
    raise RuntimeError("a middleware factory called next(request) before any request came")


def check_factory(where: str, factory: Middleware) -> None:
    """Raise TypeError naming `factory` unless it returns a handler (called once to see)."""
    try:
        handler = factory(_stand_in_next)
    except Exception as exc:  # e.g. a handler passed where a middleware belongs
        raise TypeError(
            f"{where}: middleware {_name(factory)} raised {type(exc).__name__}: {exc} when "
            "called with the next handler (a middleware takes `next` and returns a handler)"
        ) from exc
    if not callable(handler):
        raise TypeError(
            f"{where}: middleware {_name(factory)} returned {handler!r:.60} instead of a handler"
            " (does it end with `return handler`?)"
        )


def check_order(where: str, middleware: Sequence[Middleware], *, complete: bool = False) -> None:
    """Raise TypeError when a middleware that must run inside another comes before it.

    A middleware names what it needs around it with ``runs_inside`` (``csrf()``: "sessions"),
    matched against the ``provides`` of those outside it; `middleware` is outermost first.
    `complete` says nothing can be added around the list later (``before_all``, which every
    other middleware runs inside), so a missing provider is an error too.
    """
    provided: set[str] = set()
    for index, mw in enumerate(middleware):
        needed = getattr(mw, "runs_inside", None)
        if needed is not None and needed not in provided:
            later = [m for m in middleware[index + 1 :] if getattr(m, "provides", None) == needed]
            if later or complete:
                fix = "it comes later in the list" if later else "it is not registered before it"
                raise TypeError(
                    f"{where}: middleware {_name(mw)} must run inside {needed}(...), but {fix}: "
                    f"put {needed}(...) first"
                )
        provides = getattr(mw, "provides", None)
        if provides is not None:
            provided.add(provides)


class UnappliedRoutes:
    """The ``register(spec)`` decorators not yet applied to a function, with where they were
    made, so the forgotten ``@`` can be named (once each)."""

    def __init__(self) -> None:
        self._pending: dict[object, str] = {}

    def add(self, spec: str) -> object:
        """Record a decorator made for `spec` by the first caller outside this package (a verb
        shortcut is one more frame in it); a token back."""
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("microwsgi."):
            frame = frame.f_back
        where = f"{frame.f_code.co_filename}, line {frame.f_lineno}" if frame else "unknown"
        token = object()
        self._pending[token] = f"register({spec!r}) at {where}"
        return token

    def applied(self, token: object) -> None:
        self._pending.pop(token, None)

    def warn(self, environ: dict[str, Any] | None = None) -> None:
        """Warn about each decorator still unapplied, and forget it."""
        for token in list(self._pending):
            made = self._pending.pop(token, None)
            if made is not None:
                report(
                    logging.WARNING,
                    "%s was never applied to a function, so that route does not exist: "
                    "is the '@' missing in front of it?",
                    made,
                    environ=environ,
                )


def warn_dropped_answer(middleware: Middleware, label: str, environ: dict[str, Any]) -> None:
    report(
        logging.WARNING,
        "middleware %s returned None although next(request) returned an answer, so the "
        "client gets an empty 204 (%s): does its handler end with `return next(request)`?",
        _name(middleware),
        label,
        environ=environ,
    )
