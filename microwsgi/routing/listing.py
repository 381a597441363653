"""The route table described for people and tools: `server.routes()` and `microwsgi routes`.

One entry per route: its verbs (the verbs one handler serves at one pattern, with one name and
one middleware chain, make one entry), its path as registered (group prefixes included), its
name, its handler as ``module.qualname``, and the ``__name__`` of every middleware it runs behind,
outermost first (before-all, the groups', its own). Mounted apps and static folders are routes
too. What the routes are is the server's business; this module only describes them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from ..chains import Middleware, Resource

__all__: list[str] = []

_VERB_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*")
_COLUMNS = ("verbs", "path", "name", "handler", "middleware")


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a function, or of the class of a callable object."""
    if isinstance(obj, functools.partial):
        return f"functools.partial({qualified_name(obj.func)})"
    named = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{named.__module__}.{named.__qualname__}"


def _middleware_name(mw: Middleware) -> str:
    name = getattr(mw, "__name__", None)
    return name if isinstance(name, str) else type(mw).__name__


def describe_routes(
    resources: Iterable[Resource],
    before_all: list[Middleware],
    mounts: Iterable[tuple[str, Any]],
) -> list[dict[str, Any]]:
    """The route table as a list of dicts (keys: verbs, path, name, handler, middleware)."""
    # Mounted apps are foreign WSGI apps: before-all middleware does not wrap them.
    routes: list[dict[str, Any]] = [
        {
            "verbs": ["*"],
            "path": prefix,
            "name": None,
            "handler": qualified_name(app),
            "middleware": [],
        }
        for prefix, app in mounts
    ]
    for resource in resources:
        entries: dict[tuple[Any, ...], dict[str, Any]] = {}
        for endpoint in resource.endpoints.values():
            middleware = [_middleware_name(mw) for mw in (*before_all, *endpoint.stack())]
            handler = endpoint.description or qualified_name(endpoint.handler)
            key = (id(endpoint.handler), endpoint.name, tuple(map(id, endpoint.stack())))
            entry = entries.setdefault(
                key,
                {
                    "verbs": [],
                    "path": resource.pattern,
                    "name": endpoint.name,
                    "handler": handler,
                    "middleware": middleware,
                },
            )
            entry["verbs"].append(endpoint.verb)
        for entry in entries.values():
            entry["verbs"].sort(key=_VERB_ORDER.index)
            routes.append(entry)
    routes.sort(key=lambda route: (route["path"], _VERB_ORDER.index(route["verbs"][0])))
    return routes


def _cells(route: dict[str, Any]) -> tuple[str, ...]:
    return (
        ", ".join(route["verbs"]),
        route["path"],
        route["name"] or "-",
        route["handler"],
        ", ".join(route["middleware"]) or "-",
    )


def format_routes(routes: list[dict[str, Any]]) -> str:
    """The route table as aligned text: a header line, then one line per route."""
    rows = [tuple(column.upper() for column in _COLUMNS), *map(_cells, routes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(lines) + "\n"
