"""`Server`: PyMicroHTTP's decorator API, and the WSGI application that serves it.

Registration (`register`, `before_all`, `errorhandler`, `mount`) only records what the user
declared. On the first request, under a lock, every route is compiled into a ready-to-call chain
(``chains.py``). The per-request path is then: match the path, pick the verb's chain, call it,
render the value (``response.py``); exceptions become answers in ``failures.py``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import ClosingIterator

from ._address import check_address
from ._http import parse_content_length
from ._wsgi import StartResponse, WSGIApp, WSGIEnvironment
from .chains import (
    ROUTE_KEY,
    Chain,
    ChainBuilder,
    Middleware,
    Resource,
    check_middleware,
    raise_not_found,
)
from .checks import check_factory, check_order
from .failures import ErrorAnswers
from .observability.health import HealthCheck, health_handler
from .request import Request, body_too_large, close_uploads, decode_path
from .response import APP_KEY, Delegate, Renderer
from .routing.converters import Converter
from .routing.groups import Registrar
from .routing.listing import describe_routes, qualified_name
from .routing.spec import parse_spec
from .routing.table import RouteTable
from .static import static_handler

if TYPE_CHECKING:
    import jinja2

__all__ = ["Server"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024


class Server(Registrar):
    """A WSGI application with the PyMicroHTTP decorator API.

    >>> server = Server()
    >>> @server.register('GET /hello/:name')
    ... def hello(request):
    ...     return {"message": f"Hello, {request['params']['name']}!"}

    Serve it with ``gunicorn app:server``, ``server.start_server(port=8080)`` or any WSGI server.
    Registration (`register`, `register_handler`, `get`/`post`/`put`/`patch`/`delete`, `group`)
    is shared with route groups (``routing/groups.py``); the routes are recorded in a
    `RouteTable` (``routing/table.py``).
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        max_form_memory_size: int | None = 500 * 1024,
        max_form_parts: int | None = 1000,
        json_dumps: Callable[[Any], str | bytes] | None = None,
        trusted_proxies: int = 0,
    ) -> None:
        self.max_body_size = max_body_size
        self.max_form_memory_size = max_form_memory_size
        self.max_form_parts = max_form_parts
        self.renderer = Renderer(json_dumps)
        self._errors = ErrorAnswers(self.renderer, debug)
        super().__init__(RouteTable(self._routes_changed))
        self._router = self._routes.router  # PERF: the hot path's one attribute read
        self._mounts: list[tuple[str, WSGIApp]] = []
        self._before_all: list[Middleware] = []
        self._lock = threading.Lock()
        self._ready = False
        self._chains = ChainBuilder(self._before_all, self._errors.answer)
        self._not_found = Chain(raise_not_found, "no route")
        self.jinja_env: jinja2.Environment | None = None  # set by templates()
        if trusted_proxies:
            # Only trust as many X-Forwarded-* hops as there are proxies we run ourselves;
            # werkzeug's ProxyFix picks the right-most values accordingly.
            n = trusted_proxies
            self.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                self.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
            )

    # -- registration -------------------------------------------------------------------

    def _routes_changed(self) -> None:
        # The compiled chains are out of date: the next request compiles them again.
        self._ready = False

    def converter(
        self,
        name: str,
        pattern: str,
        to_python: Callable[[str], Any] = str,
        to_url: Callable[[Any], str] = str,
    ) -> None:
        """Add a parameter type for routes to use as ``:param<name>``.

        `pattern` is a regex the whole (percent-decoded) segment must match; `to_python` turns
        the segment into the value handlers see (a `ValueError` from it counts as no match);
        `to_url` turns a value back into segment text for `url_for`.
        """
        self._routes.add_converter(Converter(name, pattern, to_python, to_url))

    def before_all(self, middleware: Middleware | None = None) -> Any:
        """Add middleware that wraps every route, outermost, in registration order.

        Use as ``@server.before_all()`` (PyMicroHTTP's ``@server.beforeAll()`` works too) or call
        ``server.before_all(mw)`` directly. The factory is called once here to check that it
        returns a handler.
        """

        def decorator(mw: Middleware) -> Middleware:
            if not callable(mw):
                raise ValueError(f"before_all middleware {mw!r} is not callable")
            check_factory("before_all", mw)
            check_order("before_all", [*self._before_all, mw], complete=True)
            self._before_all.append(mw)
            self._ready = False
            return mw

        return decorator if middleware is None else decorator(middleware)

    beforeAll = before_all  # PyMicroHTTP's spelling, kept for drop-in use

    def errorhandler(self, key: int | type[BaseException]) -> Callable[[F], F]:
        """Decorator: shape error answers for a status (404, 500...) or an exception class.

        The function receives ``(request, error)``; its return value follows the usual
        response rules, with the error's status unless it returns a tuple with its own.
        """
        self._errors.check_key(key)

        def decorator(handler: F) -> F:
            self._errors.handlers[key] = handler
            return handler

        return decorator

    @property
    def debug(self) -> bool:
        """Tracebacks in 500 answers (development only)."""
        return self._errors.debug

    @debug.setter
    def debug(self, value: bool) -> None:
        self._errors.debug = value

    def mount(self, prefix: str, app: WSGIApp) -> None:
        """Serve another WSGI app under `prefix`, with SCRIPT_NAME and PATH_INFO shifted."""
        parse_spec(f"* {prefix}")
        if prefix == "/" or prefix.endswith("/") or ":" in prefix or "*" in prefix:
            raise ValueError(
                f"mount prefix {prefix!r} must be a static path like '/api', no trailing '/'"
            )
        if not callable(app):
            raise ValueError(f"mount {prefix!r}: {app!r} is not a WSGI callable")
        wsgi_prefix = prefix.encode("utf-8").decode("latin-1")

        def delegate(request: dict[str, Any]) -> Delegate:
            environ = request["environ"]
            inner = dict(environ)
            inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + wsgi_prefix
            inner["PATH_INFO"] = environ.get("PATH_INFO", "")[len(wsgi_prefix) :]
            return Delegate(app, inner)

        route = Chain(delegate, f"mount {prefix} -> {app!r:.60}")
        for pattern in (prefix, f"{prefix}/*mounted_path"):
            resource = self._routes.resource(pattern, f"mount {prefix}")
            if resource.endpoints or resource.mounted is not None:
                raise ValueError(f"mount {prefix!r}: {pattern!r} already has routes")
            resource.mounted = route
        self._mounts.append((prefix, app))
        self._ready = False

    def static(
        self,
        prefix: str,
        directory: str,
        middleware: Middleware | Sequence[Middleware] | None = None,
        *,
        name: str | None = None,
        **options: Any,
    ) -> None:
        """Serve the files under `directory` at ``prefix/<path>`` (no listings, no way out).

        A relative `directory` is looked up beside the calling module, then in the current
        directory; ValueError names every path tried if it is in neither. The route is named
        ``'static'`` unless given another `name`: ``url_for('static', path='css/site.css')``.
        """
        caller = sys._getframe(1).f_globals.get("__file__")
        handler = static_handler(directory, beside=caller, **options)
        spec = f"GET {prefix.rstrip('/')}/*path"
        chain = check_middleware(f"route {spec!r}", middleware)
        described = f"{qualified_name(static_handler)}({directory!r})"
        self._routes.add(spec, handler, chain, (), name, "static", described, static=True)

    def health(
        self, path: str = "/healthz", checks: Mapping[str, HealthCheck] | None = None
    ) -> None:
        """Answer ``GET path`` for load balancers and container health checks (docs/health.md).

        `checks` maps a name to a callable run at each request: 200 ``{"status": "ok",
        "checks": {name: "ok", ...}}`` when none raises or returns False, else 503 with
        ``"status": "failing"`` and, for each failing check, its exception's type name.
        """
        handler = health_handler(path, checks)
        self._routes.add(f"GET {path}", handler, [], description="server.health()", internal=True)

    def metrics(self, path: str = "/metrics", *, buckets: Sequence[float] | None = None) -> None:
        """Count and time every request, and serve the counts at ``GET path`` in Prometheus's
        text format (docs/metrics.md); `buckets` are the duration histogram's, in seconds.

        Needs prometheus_client (``pip install 'microwsgi[metrics]'``): ImportError without.
        """
        from .observability.metrics import install, scrape_handler

        measure = install(self, buckets)
        self._routes.add(
            f"GET {path}", scrape_handler(), [], description="server.metrics()", internal=True
        )
        self.wsgi_app = measure(self.wsgi_app)  # type: ignore[method-assign]

    def templates(
        self, folder: str | os.PathLike[str] = "templates", **jinja_options: Any
    ) -> jinja2.Environment:
        """Set up Jinja2 for ``render(...)`` and return its environment (for filters, globals).

        A relative `folder` is looked up as ``static()`` looks up its own. `jinja_options` are
        ``jinja2.Environment``'s. ImportError naming ``microwsgi[templates]`` without Jinja2.
        """
        from .templates import create_environment  # Jinja2 is an extra: only apps that render

        caller = sys._getframe(1).f_globals.get("__file__")
        self.jinja_env = create_environment(folder, caller, self.debug, jinja_options)
        return self.jinja_env

    def openapi(
        self, *, title: str = "microwsgi app", version: str = "0.1.0", **info: Any
    ) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this app's routes, as a dict (docs/openapi.md).

        `title`, `version` and any other `info` fields (``description``, ``contact``...) make
        its ``info`` object. Mounted apps, static folders and the framework's own routes
        (``api_docs``, ``health``) are left out.
        """
        from .openapi.document import build_document

        routes = self._routes
        return build_document(
            routes.resources(), routes.converters, title=title, version=version, info=info
        )

    def api_docs(
        self,
        path: str = "/docs",
        spec: str = "/openapi.json",
        *,
        title: str = "microwsgi app",
        version: str = "0.1.0",
    ) -> None:
        """Serve this app's OpenAPI document at ``GET spec`` and an interactive page for it
        (Swagger UI 5, served by the app itself, never from a CDN) at ``GET path``
        (docs/openapi.md). These routes are not in the document."""
        from .openapi.docs import register_docs

        document = partial(self.openapi, title=title, version=version)
        register_docs(self._routes, document, path, spec, title)

    def routes(self) -> list[dict[str, Any]]:
        """Every route, mounted app and static folder, sorted by path, as dicts with the keys
        ``verbs``, ``path``, ``name``, ``handler`` (``module.qualname``) and ``middleware``
        (the ``__name__`` of each middleware it runs behind, outermost first)."""
        return describe_routes(self._routes.resources(), self._before_all, self._mounts)

    def url_for(self, name: str, /, **params: Any) -> str:
        """The app-relative URL of the route called `name`, e.g. ``'/notes/7?full=1'``.

        Parameters are converted with their type's ``to_url`` and percent-encoded; the other
        keyword arguments make the query string, in the order given (``None`` values left out,
        lists repeated). A name no route has, an ambiguous name or a missing parameter is a
        `LookupError`; a value the route would not match (``'/'`` in a segment, ``'x'`` for an
        ``<int>``) is a `ValueError`. ``request['url_for']`` adds the app's mount point.
        """
        return self._routes.names.url_for(name, params)

    # -- the route table, as the framework's own modules see it ---------------------------

    def resources(self) -> list[Resource]:
        """Every resource (the routes registered at one pattern, ``chains.Resource``).

        Their `dispatch` and `any` hold the chains the server calls once it has compiled (on
        its first request, and again after a route is added). Not public API: the seam the
        framework's own modules (``observability/metrics.py``) and the tests read the table by.
        """
        return list(self._routes.resources())

    def match(self, path: str) -> Resource | None:
        """The resource whose pattern best matches a ``PATH_INFO``, as `wsgi_app` matches it;
        None when none does (HTTPError 400 for a path that is not UTF-8, as for a request).
        Not public API, as `resources`."""
        found = self._router.find(decode_path(path))
        return None if found is None else found[0]

    # -- compilation --------------------------------------------------------------------

    def _compile(self, environ: WSGIEnvironment | None = None) -> None:
        with self._lock:
            if self._ready:
                return
            self._routes.unapplied.warn(environ)
            builder = ChainBuilder(self._before_all, self._errors.answer)
            for resource in self._routes.resources():
                builder.compile(resource)
            self._not_found = builder.chain(raise_not_found, [], "no route")
            self._chains = builder
            self._ready = True

    # -- serving ------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point; wrap this attribute to add WSGI middleware around the app."""
        environ[APP_KEY] = self
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        request = Request(verb=method, path=path, params={}, environ=environ)
        route = self._not_found
        try:
            if not self._ready:
                self._compile(environ)
                route = self._not_found  # now wrapped in the before-all middleware
            if not path.isascii():  # PERF: an ASCII path needs no decoding: one C call
                path = request["path"] = decode_path(path)
            # PERF: routes without parameters, looked up here rather than through a router
            # method: one dict lookup and no call for the commonest requests.
            resource = self._router.static.get(path)
            if resource is None:
                found = self._router.find_dynamic(path)
                if found is not None:
                    resource, request["params"] = found
            if resource is not None:
                # PERF: the best match has the verb on almost every request; only when it has
                # not do the other matching patterns get looked at.
                route = (
                    resource.dispatch.get(method)
                    or resource.any
                    or self._by_verb(path, method, request)
                )
            environ[ROUTE_KEY] = route  # what metrics label the request by
            if environ.get("CONTENT_LENGTH"):
                self._check_length(environ["CONTENT_LENGTH"])
            rv = route.call(request)
        except Exception as exc:
            rv = self._errors.answer(request, exc, route.label)
        try:
            body = self.renderer.render(rv, environ, start_response, request)
        except Exception as exc:
            body = self._errors.render_failure(request, rv, exc, route.label, start_response)
        # Uploads spooled to disk are freed once the answer is sent. PERF: dict.__contains__
        # asks whether the files were parsed without Request.__contains__, which would report
        # the lazy key as present on every request.
        if dict.__contains__(request, "files"):
            body = ClosingIterator(body, partial(close_uploads, request["files"]))
        return body

    def _by_verb(self, path: str, method: str, request: dict[str, Any]) -> Chain:
        """The best route with this verb among every pattern matching the path; else the
        automatic OPTIONS or 405 answer for the patterns that match."""
        matched = []
        for resource, params in self._router.find_all(path):
            route = resource.dispatch.get(method) or resource.any
            if route is not None:
                request["params"] = params
                return route
            matched.append(resource)
        return self._chains.automatic(tuple(matched), method)

    def _check_length(self, length: str) -> None:
        # Refuse an announced oversized body before anyone reads it.
        limit = self.max_body_size
        if limit is None:
            return
        declared = parse_content_length(length)  # an invalid one is a 400 when the body is read
        if declared is not None and declared > limit:
            raise body_too_large(limit)

    # -- development server -------------------------------------------------------------

    def start_server(
        self, host: str = "localhost", port: int = 9090, listen_msg: bool = False, **options: Any
    ) -> None:
        """Serve this app on the built-in HTTP/1.1 development server (blocks until stopped).

        Raises TypeError for a host that is not a string (``start_server(8080)``: write
        ``start_server(port=8080)``) and ValueError for a port outside 0-65535.
        """
        check_address(host, port, "start_server")
        self._routes.unapplied.warn()
        # Imported here: an app under gunicorn never loads the development server.
        from .server import BindError, serve

        try:
            serve(self, host=host, port=port, listen_msg=listen_msg, **options)
        except BindError as exc:
            # A script's user needs the reason, not a traceback through the server's internals.
            raise SystemExit(f"microwsgi: {exc}") from None
