"""``cors(...)``: cross-origin access (the Fetch standard's "CORS protocol"), preflight included.

`CorsMiddleware` holds one policy: which origins, methods and headers are allowed. It answers
preflights itself and adds the ``Access-Control-*`` headers to the answers of the routes it
wraps; it says so with ``answers_preflight``, so that ``chains.py`` puts it on the automatic
OPTIONS answer of those routes too. Chaining middleware is the core's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Response

from ..chains import Handler
from ..request import request_header
from ..response import Prepared, add_vary, prepare

__all__ = ["cors"]


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _origin_policy(
    origins: str | Iterable[str] | Callable[[str], bool],
) -> tuple[bool, Callable[[str], bool]]:
    """(allows any origin, predicate on an origin)."""
    if callable(origins):
        return False, origins
    allowed = frozenset(_names(origins))
    if "*" in allowed:
        return True, lambda origin: True
    for origin in allowed:
        if origin.endswith("/") or "://" not in origin:
            raise ValueError(f"CORS origin must look like 'https://host[:port]', got {origin!r}")
    return False, allowed.__contains__


class CorsMiddleware:
    """What ``cors(...)`` returns: a PyMicroHTTP-style middleware holding one CORS policy.

    ``answers_preflight`` tells the core that this middleware answers OPTIONS preflights
    itself, so it belongs on the automatic OPTIONS answer of the routes it wraps too.
    """

    answers_preflight = True

    def __init__(
        self,
        origins: str | Iterable[str] | Callable[[str], bool],
        methods: str | Iterable[str],
        headers: str | Iterable[str],
        expose_headers: str | Iterable[str],
        credentials: bool,
        max_age: int | None,
    ) -> None:
        self.any_origin, self.origin_allowed = _origin_policy(origins)
        self.methods = {m.upper() for m in _names(methods)}
        self.methods_value = ", ".join(sorted(self.methods - {"*"}))
        self.headers = {h.lower() for h in _names(headers)}
        self.exposed = ", ".join(_names(expose_headers))
        self.credentials = credentials
        self.max_age = max_age
        # '*' means "any origin" only without credentials; with them the origin is echoed,
        # so the answer differs by origin and shared caches must key on it (Vary: Origin).
        self.varies = not self.any_origin or credentials

    def allow_origin_value(self, origin: str) -> str:
        return "*" if self.any_origin and not self.credentials else origin

    def refusal(self, origin: str, method: str, asked: list[str]) -> str | None:
        if not self.origin_allowed(origin):
            return f"origin {origin!r} is not allowed"
        if "*" not in self.methods and method.upper() not in self.methods:
            return f"method {method!r} is not allowed"
        refused = [h for h in asked if h.lower() not in self.headers]
        if "*" not in self.headers and refused:
            return f"headers {', '.join(refused)!r} are not allowed"
        return None

    def preflight(self, request: dict[str, Any], origin: str, method: str) -> Response:
        requested = request_header(request, "Access-Control-Request-Headers") or ""
        asked = [h.strip() for h in requested.split(",") if h.strip()]
        refused = self.refusal(origin, method, asked)
        if refused is not None:
            response = Response(f"CORS preflight refused: {refused}", 403, mimetype="text/plain")
        else:
            response = Response(status=204)
            del response.headers["Content-Type"]  # a 204 has no content to type
            response.headers["Access-Control-Allow-Origin"] = self.allow_origin_value(origin)
            # Echoing what was asked keeps '*' meaningful with credentials, where a literal
            # '*' in Allow-Methods/Allow-Headers is not a wildcard.
            response.headers["Access-Control-Allow-Methods"] = (
                method if "*" in self.methods else self.methods_value
            )
            if asked:
                response.headers["Access-Control-Allow-Headers"] = ", ".join(asked)
            if self.credentials:
                response.headers["Access-Control-Allow-Credentials"] = "true"
            if self.max_age is not None:
                response.headers["Access-Control-Max-Age"] = str(self.max_age)
        if self.varies:
            add_vary(response.headers, "Origin")
        if "*" in self.headers and asked:
            add_vary(response.headers, "Access-Control-Request-Headers")
        return response

    def decorate(self, response: Response | Prepared, origin: str | None) -> Response | Prepared:
        if self.varies:
            add_vary(response.headers, "Origin")
        if origin is not None and self.origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = self.allow_origin_value(origin)
            if self.credentials:
                response.headers["Access-Control-Allow-Credentials"] = "true"
            if self.exposed:
                response.headers["Access-Control-Expose-Headers"] = self.exposed
        return response

    def __call__(self, next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            origin = request_header(request, "Origin")
            if origin is not None and request["verb"] == "OPTIONS":
                method = request_header(request, "Access-Control-Request-Method")
                if method is not None:
                    return self.preflight(request, origin, method)
            rv = next(request)
            if origin is None and not self.varies:
                return rv
            return self.decorate(prepare(rv, request), origin)

        return handler


def cors(
    origins: str | Iterable[str] | Callable[[str], bool] = "*",
    methods: str | Iterable[str] = DEFAULT_METHODS,
    headers: str | Iterable[str] = (),
    expose_headers: str | Iterable[str] = (),
    credentials: bool = False,
    max_age: int | None = None,
) -> CorsMiddleware:
    """Cross-origin access for the routes it wraps, preflight included.

    ``origins``: ``'*'``, one origin, a list (``'https://app.example'``, scheme and host,
    port if not the default) or a predicate ``f(origin) -> bool``. ``methods`` and
    ``headers`` are what a preflight may ask for (``'*'`` allows any); safelisted headers
    such as ``Content-Type: text/plain`` never need listing. ``expose_headers`` are
    response headers scripts may read. ``credentials=True`` allows cookies, and then the
    origin is echoed rather than ``*``, as the CORS protocol requires.

    A preflight (OPTIONS with ``Origin`` and ``Access-Control-Request-Method``) is answered
    here without calling the handler: 204 with the ``Access-Control-*`` headers when the
    origin, method and headers are allowed; otherwise 403 with no ``Access-Control-*``
    headers and a text body naming what was refused. Other requests always reach the
    handler (the browser enforces CORS, not the server); an allowed origin gets
    ``Access-Control-Allow-Origin`` on the answer, a refused one does not. ``Vary: Origin``
    is added to every answer whose CORS headers depend on the origin.
    """
    return CorsMiddleware(origins, methods, headers, expose_headers, credentials, max_age)
