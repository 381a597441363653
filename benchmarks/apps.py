"""The benchmarked application, written once per framework, and the route table it registers.

Every framework gets the same route set: filler routes of realistic REST shapes (collections,
items, nested items, a few literal siblings of the measured parameter route) plus the measured
routes, registered last so a linear router pays its full price:

- ``GET /hello`` -> ``{"message": "Hello, World!"}``
- ``GET /users/:group/:channel?n=3`` -> ``{"group": ..., "channel": ..., "n": "3"}``
- ``POST /echo`` with a JSON body -> the same JSON
- ``GET /items/:id<int>`` -> ``{"id": 42}``, the id converted by the framework's own integer
  type (Falcon ``{id:int}``, Flask ``<int:id>``, Bottle ``<id:int>``)
- ``GET /api/v2/notes/:note_id`` -> ``{"note": ...}``, registered through nested groups where
  the framework has them (microwsgi ``server.group``, Flask blueprints), as a plain route elsewhere

``build_app(framework, n_routes)`` returns a plain WSGI callable; gunicorn loads it through
``benchmarks.apps:build_app("falcon")``. Timing and verification live in ``inprocess.py``.
"""

from __future__ import annotations

import importlib
import itertools
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

WSGIApp = Callable[..., Iterable[bytes]]
Route = tuple[str, str]  # (verb, template in microwsgi syntax: ':name', ':name<int>' segments)

FRAMEWORKS = ("bare", "microwsgi", "falcon", "bottle", "flask")
DEFAULT_ROUTES = 100

HELLO = {"message": "Hello, World!"}
TYPED: Route = ("GET", "/items/:id<int>")
GROUPS = ("/api", "/v2")  # the grouped route's prefixes, outermost first
GROUPED: Route = ("GET", "/api/v2/notes/:note_id")
MEASURED: tuple[Route, ...] = (
    ("GET", "/hello"),
    ("GET", "/users/:group/:channel"),
    ("POST", "/echo"),
    TYPED,
    GROUPED,
)

_NOUNS = (
    "accounts", "orders", "products", "invoices", "customers", "carts", "payments",
    "shipments", "reviews", "coupons", "tickets", "articles", "comments", "tags", "teams",
)  # fmt: skip
# Seven routes per resource, the shapes a typical JSON API registers.
_SHAPES = (
    ("GET", "/api/v1/{r}"),
    ("POST", "/api/v1/{r}"),
    ("GET", "/api/v1/{r}/:id"),
    ("PUT", "/api/v1/{r}/:id"),
    ("DELETE", "/api/v1/{r}/:id"),
    ("GET", "/api/v1/{r}/:id/items"),
    ("GET", "/api/v1/{r}/:id/items/:item_id"),
)
# Siblings of the measured '/users/:group/:channel': literals and parameters at the same depth.
_USER_ROUTES = (
    ("GET", "/users"),
    ("POST", "/users"),
    ("GET", "/users/:group"),
    ("GET", "/users/:group/settings"),
    ("GET", "/users/:group/members"),
)


def route_table(n_routes: int = DEFAULT_ROUTES) -> list[Route]:
    """The ``n_routes`` routes (at least the 3 measured ones), measured routes last."""
    if n_routes < len(MEASURED):
        raise ValueError(f"n_routes must be at least {len(MEASURED)}, got {n_routes}")
    n_filler = n_routes - len(MEASURED)
    filler: list[Route] = list(_USER_ROUTES[:n_filler])
    i = 0
    while len(filler) < n_filler:
        noun = _NOUNS[i % len(_NOUNS)]
        resource = noun if i < len(_NOUNS) else f"{noun}{i // len(_NOUNS)}"
        for verb, shape in _SHAPES:
            if len(filler) == n_filler:
                break
            filler.append((verb, shape.format(r=resource)))
        i += 1
    return filler + list(MEASURED)


def _convert(template: str, spell: Callable[[str, str | None], str]) -> str:
    """':name' and ':name<int>' segments -> framework syntax, ``spell(name, type or None)``."""
    parts = []
    for segment in template.split("/"):
        if segment.startswith(":"):
            name, _, kind = segment[1:].rstrip(">").partition("<")
            segment = spell(name, kind or None)
        parts.append(segment)
    return "/".join(parts)


def _falcon_param(name: str, kind: str | None) -> str:
    return f"{{{name}:{kind}}}" if kind else f"{{{name}}}"


def _bottle_param(name: str, kind: str | None) -> str:
    return f"<{name}:{kind}>" if kind else f"<{name}>"


def _flask_param(name: str, kind: str | None) -> str:
    return f"<{kind}:{name}>" if kind else f"<{name}>"


def _item(id: int) -> dict[str, int]:
    return {"id": id}


def _note(note_id: str) -> dict[str, str]:
    return {"note": note_id}


def _filler_payload(verb: str, template: str) -> dict[str, str]:
    return {"route": f"{verb} {template}"}


# --- bare WSGI: the ceiling, a hand-written function doing the same work --------------------

_JSON_HEADERS = "application/json"


def _bare_json(start_response: Callable[..., Any], obj: Any) -> list[bytes]:
    body = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", _JSON_HEADERS), ("Content-Length", str(len(body)))])
    return [body]


def build_bare(n_routes: int = DEFAULT_ROUTES) -> WSGIApp:
    """Static routes in a dict, the one parameter route matched by hand: no framework at all."""
    static: dict[tuple[str, str], Any] = {}
    for verb, template in route_table(n_routes):
        if ":" not in template:
            static[(verb, template)] = _filler_payload(verb, template)
    static[("GET", "/hello")] = HELLO

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        if method == "POST" and path == "/echo":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            return _bare_json(start_response, json.loads(environ["wsgi.input"].read(length)))
        payload = static.get((method, path))
        if payload is not None:
            return _bare_json(start_response, payload)
        parts = path.split("/")
        if method == "GET" and len(parts) == 4 and parts[1] == "users":
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            return _bare_json(
                start_response, {"group": parts[2], "channel": parts[3], "n": query.get("n")}
            )
        if method == "GET" and len(parts) == 3 and parts[1] == "items" and parts[2].isdigit():
            return _bare_json(start_response, _item(int(parts[2])))
        if method == "GET" and len(parts) == 5 and parts[1:4] == ["api", "v2", "notes"]:
            return _bare_json(start_response, _note(parts[4]))
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"Not Found"]

    return app


# --- microwsgi ------------------------------------------------------------------------------


def build_microwsgi(n_routes: int = DEFAULT_ROUTES, server_class: Any = None) -> WSGIApp:
    """microwsgi's app; ``server_class`` lets a profiling session try a patched copy."""
    if server_class is None:
        from microwsgi import Server as server_class

    server = server_class()

    def hello(request: dict[str, Any]) -> dict[str, str]:
        return HELLO

    def users(request: dict[str, Any]) -> dict[str, Any]:
        params = request["params"]
        return {
            "group": params["group"],
            "channel": params["channel"],
            "n": request["query"].get("n"),
        }

    def echo(request: dict[str, Any]) -> Any:
        return request["json"]

    def item(request: dict[str, Any]) -> dict[str, int]:
        return _item(request["params"]["id"])

    def note(request: dict[str, Any]) -> dict[str, str]:
        return _note(request["params"]["note_id"])

    measured = {"/hello": hello, "/users/:group/:channel": users, "/echo": echo, TYPED[1]: item}
    for verb, template in route_table(n_routes):
        if (verb, template) == GROUPED:
            group = server
            for prefix in GROUPS:
                group = group.group(prefix)
            group.register_handler(f"{verb} {template[len(''.join(GROUPS)) :]}", note)
            continue
        handler = measured.get(template) or _constant(_filler_payload(verb, template))
        server.register_handler(f"{verb} {template}", handler)
    return server  # type: ignore[no-any-return]


def _constant(payload: dict[str, str]) -> Callable[..., dict[str, str]]:
    def handler(*args: Any, **kwargs: Any) -> dict[str, str]:
        return payload

    return handler


# --- Falcon ---------------------------------------------------------------------------------


class _FalconResource:
    """One resource per URI template; responders are attached per verb as on_<verb>."""


def build_falcon(n_routes: int = DEFAULT_ROUTES) -> WSGIApp:
    import falcon

    def on_hello(req: Any, resp: Any) -> None:
        resp.media = HELLO

    def on_users(req: Any, resp: Any, group: str, channel: str) -> None:
        resp.media = {"group": group, "channel": channel, "n": req.get_param("n")}

    def on_echo(req: Any, resp: Any) -> None:
        resp.media = req.get_media()

    def on_item(req: Any, resp: Any, id: int) -> None:
        resp.media = _item(id)

    def on_note(req: Any, resp: Any, note_id: str) -> None:
        resp.media = _note(note_id)

    measured = {
        "/hello": on_hello,
        "/users/:group/:channel": on_users,
        "/echo": on_echo,
        TYPED[1]: on_item,
        GROUPED[1]: on_note,
    }
    resources: dict[str, _FalconResource] = {}
    for verb, template in route_table(n_routes):
        responder = measured.get(template)
        if responder is None:
            responder = _falcon_constant(_filler_payload(verb, template))
        resource = resources.setdefault(template, _FalconResource())
        setattr(resource, f"on_{verb.lower()}", responder)
    app = falcon.App()
    for template, resource in resources.items():
        app.add_route(_convert(template, _falcon_param), resource)
    return app


def _falcon_constant(payload: dict[str, str]) -> Callable[..., None]:
    def responder(req: Any, resp: Any, **params: str) -> None:
        resp.media = payload

    return responder


# --- Bottle ---------------------------------------------------------------------------------


def build_bottle(n_routes: int = DEFAULT_ROUTES) -> WSGIApp:
    import bottle  # type: ignore[import-untyped]

    def hello() -> dict[str, str]:
        return HELLO

    def users(group: str, channel: str) -> dict[str, Any]:
        return {"group": group, "channel": channel, "n": bottle.request.query.get("n")}

    def echo() -> Any:
        return bottle.request.json

    measured = {
        "/hello": hello,
        "/users/:group/:channel": users,
        "/echo": echo,
        TYPED[1]: _item,
        GROUPED[1]: _note,
    }
    app = bottle.Bottle()
    for verb, template in route_table(n_routes):
        callback = measured.get(template) or _constant(_filler_payload(verb, template))
        app.route(_convert(template, _bottle_param), method=verb, callback=callback)
    return app  # type: ignore[no-any-return]


# --- Flask ----------------------------------------------------------------------------------


def build_flask(n_routes: int = DEFAULT_ROUTES) -> WSGIApp:
    import flask

    def hello() -> dict[str, str]:
        return HELLO

    def users(group: str, channel: str) -> dict[str, Any]:
        return {"group": group, "channel": channel, "n": flask.request.args.get("n")}

    def echo() -> Any:
        return flask.request.get_json()

    measured: dict[str, Callable[..., Any]] = {
        "/hello": hello,
        "/users/:group/:channel": users,
        "/echo": echo,
        TYPED[1]: _item,
    }
    app = flask.Flask("bench")
    blueprints = [flask.Blueprint(f"g{i}", "bench", url_prefix=p) for i, p in enumerate(GROUPS)]
    blueprints[-1].add_url_rule(
        _convert(GROUPED[1][len("".join(GROUPS)) :], _flask_param), view_func=_note
    )
    for outer, inner in itertools.pairwise(blueprints):
        outer.register_blueprint(inner)
    app.register_blueprint(blueprints[0])
    for index, (verb, template) in enumerate(route_table(n_routes)):
        if (verb, template) == GROUPED:
            continue
        view = measured.get(template) or _constant(_filler_payload(verb, template))
        app.add_url_rule(
            _convert(template, _flask_param), endpoint=f"r{index}", view_func=view, methods=[verb]
        )
    return app


_BUILDERS: dict[str, Callable[[int], WSGIApp]] = {
    "bare": build_bare,
    "microwsgi": build_microwsgi,
    "falcon": build_falcon,
    "bottle": build_bottle,
    "flask": build_flask,
}
_MODULES = {"microwsgi": "microwsgi", "falcon": "falcon", "bottle": "bottle", "flask": "flask"}


def build_app(framework: str, n_routes: int = DEFAULT_ROUTES) -> WSGIApp:
    """The benchmark app for ``framework`` with ``n_routes`` routes (gunicorn's entry point)."""
    try:
        builder = _BUILDERS[framework]
    except KeyError:
        raise ValueError(f"unknown framework {framework!r}; choose from {FRAMEWORKS}") from None
    return builder(n_routes)


def framework_version(framework: str) -> str:
    """The installed version of ``framework`` ('-' for bare WSGI), for the results header."""
    if framework == "bare":
        return "-"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(framework)
    except PackageNotFoundError:
        module = importlib.import_module(_MODULES[framework])
        return str(getattr(module, "__version__", "(source tree)"))


def unavailable_reason(framework: str) -> str | None:
    """Why ``framework`` cannot be benchmarked here (not importable), or None if it can."""
    module = _MODULES.get(framework)
    if module is None:
        return None
    try:
        imported = importlib.import_module(module)
    except Exception as exc:  # any import-time failure means: report it, measure the rest
        return f"{type(exc).__name__}: {exc}"
    if framework == "microwsgi" and not hasattr(imported, "Server"):
        return "microwsgi.Server is not importable yet"
    return None
