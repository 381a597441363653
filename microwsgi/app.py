"""`Server`: the seed's decorator API, and the WSGI application that serves it.

Registration (`register`, `before_all`, `errorhandler`, `mount`) only records what the user
declared. On the first request, under a lock, every route is compiled into a ready-to-call
chain: before-all middleware outermost, then the route's own middleware, then the handler,
with error handling at each `next` boundary so middleware always gets a value back. The
per-request path is then: match the path, pick the verb's chain, call it, render the value.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response
from werkzeug.wsgi import ClosingIterator

from .errors import HTTPError
from .files import static_handler
from .request import SERVER_KEY, Request, body_too_large, close_uploads, decode_path
from .response import Delegate, InvalidResponse, Renderer, StartResponse, WSGIResponse
from .routing import ANY_VERB, VERBS, Router, parse_spec
from .server import BindError, serve

__all__ = ["Handler", "Middleware", "Server"]

log = logging.getLogger("microwsgi")

Handler = Callable[[dict[str, Any]], Any]
Middleware = Callable[[Handler], Handler]
ErrorHandler = Callable[[dict[str, Any], BaseException], Any]
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
_ALL_VERBS = ", ".join(sorted(VERBS))


class _Endpoint:
    """One registered verb at one pattern, as the user declared it."""

    __slots__ = ("handler", "label", "middleware")

    def __init__(self, handler: Handler, middleware: list[Middleware], label: str) -> None:
        self.handler = handler
        self.middleware = middleware
        self.label = label


class _Route:
    """A compiled chain, ready to call with a request, and the name used in logs."""

    __slots__ = ("call", "label")

    def __init__(self, call: Handler, label: str) -> None:
        self.call = call
        self.label = label


class _Resource:
    """Everything registered at one path pattern; `dispatch` is filled by compilation."""

    __slots__ = ("dispatch", "endpoints", "fallback", "mounted", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.endpoints: dict[str, _Endpoint] = {}
        self.mounted: _Route | None = None
        self.dispatch: dict[str, _Route] = {}
        self.fallback: _Route | None = None

    def allowed(self) -> str:
        if ANY_VERB in self.endpoints:
            return _ALL_VERBS
        verbs = set(self.endpoints) | {"OPTIONS"}
        if "GET" in verbs:
            verbs.add("HEAD")
        return ", ".join(sorted(verbs))


def _as_middleware_list(
    spec: str, middleware: Middleware | Sequence[Middleware] | None
) -> list[Middleware]:
    if middleware is None:
        return []
    items: object = [middleware] if callable(middleware) else middleware
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"route {spec!r}: middleware must be a function or a list of functions")
    for item in items:
        if not callable(item):
            raise ValueError(f"route {spec!r}: middleware {item!r} is not callable")
    return list(items)


class Server:
    """A WSGI application with the PyMicroHTTP decorator API.

    >>> server = Server()
    >>> @server.register('GET /hello/:name')
    ... def hello(request):
    ...     return {"message": f"Hello, {request['params']['name']}!"}

    Serve it with ``gunicorn app:server``, ``server.start_server(port=8080)`` or any WSGI server.
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
        self.debug = debug
        self.max_body_size = max_body_size
        self.max_form_memory_size = max_form_memory_size
        self.max_form_parts = max_form_parts
        self.renderer = Renderer(json_dumps)
        self._router: Router[_Resource] = Router()
        self._before_all: list[Middleware] = []
        self._error_handlers: dict[int | type[BaseException], ErrorHandler] = {}
        self._lock = threading.Lock()
        self._ready = False
        self._not_found = _Route(_raise_not_found, "no route")
        if trusted_proxies:
            # Only trust as many X-Forwarded-* hops as there are proxies we run ourselves;
            # werkzeug's ProxyFix picks the right-most values accordingly.
            n = trusted_proxies
            self.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                self.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
            )

    # -- registration -------------------------------------------------------------------

    def register(
        self, spec: str, middleware: Middleware | Sequence[Middleware] | None = None
    ) -> Callable[[F], F]:
        """Decorator: route `spec` ('VERB /path') to the function, behind `middleware`."""
        parse_spec(spec)  # fail at the decorator line, before the function is defined

        def decorator(handler: F) -> F:
            self.register_handler(spec, handler, middleware)
            return handler

        return decorator

    def register_handler(
        self,
        spec: str,
        handler: Handler,
        middleware: Middleware | Sequence[Middleware] | None = None,
    ) -> None:
        """Route `spec` to `handler` (the non-decorator form of `register`)."""
        verb, pattern = parse_spec(spec)
        if not callable(handler):
            raise ValueError(f"route {spec!r}: handler {handler!r} is not callable")
        chain = _as_middleware_list(spec, middleware)
        resource = self._resource(pattern, spec)
        if verb in resource.endpoints:
            raise ValueError(f"route {spec!r} is already registered")
        if resource.mounted is not None:
            raise ValueError(f"route {spec!r}: {pattern!r} is taken by a mounted app")
        name = getattr(handler, "__qualname__", repr(handler))
        resource.endpoints[verb] = _Endpoint(handler, chain, f"{name} ({spec})")
        self._ready = False

    def _resource(self, pattern: str, spec: str) -> _Resource:
        resource = self._router.get(pattern)
        if resource is None:
            resource = _Resource(pattern)
            self._router.add(pattern, resource, spec)
        elif resource.pattern != pattern:
            raise ValueError(
                f"route {spec!r}: {pattern!r} conflicts with the already registered "
                f"{resource.pattern!r} (same place, different parameter names)"
            )
        return resource

    def before_all(self, middleware: Middleware | None = None) -> Any:
        """Add middleware that wraps every route, outermost, in registration order.

        Use as ``@server.before_all()`` (the seed's ``@server.beforeAll()`` works too) or call
        ``server.before_all(mw)`` directly.
        """

        def decorator(mw: Middleware) -> Middleware:
            if not callable(mw):
                raise ValueError(f"before_all middleware {mw!r} is not callable")
            self._before_all.append(mw)
            self._ready = False
            return mw

        return decorator if middleware is None else decorator(middleware)

    beforeAll = before_all  # the seed's spelling, kept for drop-in use

    def errorhandler(self, key: int | type[BaseException]) -> Callable[[F], F]:
        """Decorator: shape error answers for a status (404, 500...) or an exception class.

        The function receives ``(request, error)``; its return value follows the usual
        response rules, with the error's status unless it returns a tuple with its own.
        """
        valid_status = isinstance(key, int) and 400 <= key <= 599
        valid_class = isinstance(key, type) and issubclass(key, BaseException)
        if not (valid_status or valid_class):
            raise ValueError(
                f"errorhandler key must be a status 400..599 or an exception class, got {key!r}"
            )

        def decorator(handler: F) -> F:
            self._error_handlers[key] = handler
            return handler

        return decorator

    def mount(self, prefix: str, app: WSGIResponse) -> None:
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

        route = _Route(delegate, f"mount {prefix} -> {app!r:.60}")
        for pattern in (prefix, f"{prefix}/*mounted_path"):
            resource = self._resource(pattern, f"mount {prefix}")
            if resource.endpoints or resource.mounted is not None:
                raise ValueError(f"mount {prefix!r}: {pattern!r} already has routes")
            resource.mounted = route
        self._ready = False

    def static(
        self,
        prefix: str,
        directory: str,
        middleware: Middleware | Sequence[Middleware] | None = None,
        **options: Any,
    ) -> None:
        """Serve the files under `directory` at ``prefix/<path>`` (no listings, no way out)."""
        handler = static_handler(directory, **options)
        self.register_handler(f"GET {prefix.rstrip('/')}/*path", handler, middleware)

    # -- compilation --------------------------------------------------------------------

    def _compile(self) -> None:
        with self._lock:
            if self._ready:
                return
            for resource in self._router.targets():
                self._compile_resource(resource)
            self._not_found = self._chain(_raise_not_found, [], "no route")
            self._ready = True

    def _compile_resource(self, resource: _Resource) -> None:
        if resource.mounted is not None:
            resource.dispatch, resource.fallback = {}, resource.mounted
            return
        dispatch = {
            verb: self._chain(ep.handler, ep.middleware, ep.label)
            for verb, ep in resource.endpoints.items()
        }
        allow = resource.allowed()
        if "GET" in dispatch:
            dispatch.setdefault("HEAD", dispatch["GET"])
        fallback = dispatch.pop(ANY_VERB, None)
        if "OPTIONS" not in dispatch and fallback is None:
            # A route's cors(...) middleware must also see the preflights it answers.
            preflight = _preflight_middleware(resource.endpoints.values())
            dispatch["OPTIONS"] = self._chain(
                _answer_options(allow), preflight, f"OPTIONS {resource.pattern}"
            )
        if fallback is None:
            fallback = self._chain(_refuse_method(allow), [], f"405 {resource.pattern}")
        resource.dispatch, resource.fallback = dispatch, fallback

    def _chain(self, handler: Handler, middleware: list[Middleware], label: str) -> _Route:
        call = handler
        for mw in reversed([*self._before_all, *middleware]):
            call = mw(self._guard(call, label))
            if not callable(call):
                raise TypeError(
                    f"middleware {mw!r} returned {call!r} instead of a handler ({label})"
                )
        return _Route(call, label)

    def _guard(self, inner: Handler, label: str) -> Handler:
        """Wrap a `next` so middleware gets errors back as answers instead of exceptions."""

        def guarded(request: dict[str, Any]) -> Any:
            if type(request) is not Request:  # a copy made by middleware: keep the lazy keys
                request = Request(request)
            try:
                return inner(request)
            except Exception as exc:
                return self._error_answer(request, exc, label)

        return guarded

    # -- serving ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point; wrap this attribute to add WSGI middleware around the app."""
        environ[SERVER_KEY] = self
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        request = Request(verb=method, path=path, params={}, environ=environ)
        route = self._not_found
        try:
            if not self._ready:
                self._compile()
                route = self._not_found  # now wrapped in the before-all middleware
            if not path.isascii():
                path = request["path"] = decode_path(path)
            resource = self._router.static.get(path)
            if resource is None:
                found = self._router.find_dynamic(path)
                if found is not None:
                    resource, request["params"] = found
            if resource is not None:
                route = resource.dispatch.get(method) or resource.fallback  # type: ignore[assignment]
            if environ.get("CONTENT_LENGTH"):
                self._check_length(environ["CONTENT_LENGTH"])
            rv = route.call(request)
        except Exception as exc:
            rv = self._error_answer(request, exc, route.label)
        try:
            body = self.renderer.render(rv, environ, start_response)
        except Exception as exc:
            body = self._render_failure(request, rv, exc, route.label, start_response)
        if dict.__contains__(request, "files"):  # uploads spooled to disk: free them once sent
            body = ClosingIterator(body, partial(close_uploads, request["files"]))
        return body

    def _render_failure(
        self,
        request: Request,
        rv: Any,
        exc: Exception,
        label: str,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Answer 500 when the return value could not be sent."""
        if isinstance(exc, InvalidResponse):
            log.error("%s returned an invalid response %.200r: %s", label, rv, exc)
        else:  # e.g. a generator failing before its first chunk
            self._log_exception(request, exc, label)
        if isinstance(rv, (Response, Delegate)):
            # That app may have called start_response already: a second call is legal only
            # with exc_info (PEP 3333), which re-raises if the headers went out.
            start_response = _with_exc_info(start_response)
        environ = request["environ"]
        answer = self._error_answer(request, exc, label, logged=True)
        try:
            return self.renderer.render(answer, environ, start_response)
        except Exception as answer_exc:  # the 500 handler's own answer was unusable
            log.error("error handler for 500 returned an invalid response: %s", answer_exc)
            fallback = self._default_error(HTTPError(500), exc)
            return self.renderer.render(fallback, environ, start_response)

    def _check_length(self, length: str) -> None:
        # Refuse an announced oversized body before anyone reads it.
        limit = self.max_body_size
        if limit is not None and length.isascii() and length.isdigit() and int(length) > limit:
            raise body_too_large(limit)

    # -- errors -------------------------------------------------------------------------

    def _error_answer(
        self, request: dict[str, Any], exc: BaseException, label: str, logged: bool = False
    ) -> Any:
        """Turn an exception into an answer: HTTPError as is, anything else as a logged 500."""
        if isinstance(exc, HTTPError):
            error = exc
        elif isinstance(exc, HTTPException) and exc.code:
            error = HTTPError(exc.code, exc.description)
        else:
            error = HTTPError(500)
            error.__cause__ = exc
        handler, argument = self._find_error_handler(error, exc)
        if error.__cause__ is exc and argument is error and not logged:
            # Unexpected: no handler claimed this exception class, so it is a bug to log.
            self._log_exception(request, exc, label)
        if handler is not None:
            try:
                rv = handler(request, argument)
            except Exception as handler_exc:
                # A broken error handler is a server bug, whatever status it was shaping.
                self._log_exception(request, handler_exc, f"error handler for {error.status}")
                return self._default_error(HTTPError(500), handler_exc)
            if type(rv) is tuple or isinstance(rv, Response):
                return rv
            return rv, error.status, error.headers
        return self._default_error(error, exc)

    def _default_error(self, error: HTTPError, exc: BaseException) -> tuple[Any, int, Any]:
        """The JSON error answer, with the traceback only in debug mode."""
        body = error.to_dict()
        if self.debug and error is not exc:
            body["traceback"] = "".join(traceback.format_exception(exc))
        return body, error.status, error.headers

    def _find_error_handler(
        self, error: HTTPError, exc: BaseException
    ) -> tuple[ErrorHandler | None, BaseException]:
        """A handler registered for the exception's class gets the exception itself;
        one registered for the status gets the HTTPError."""
        handlers = self._error_handlers
        for cls in type(exc).__mro__ if handlers else ():
            if cls in handlers:
                return handlers[cls], exc
        return handlers.get(error.status), error

    def _log_exception(self, request: dict[str, Any], exc: BaseException, label: str) -> None:
        environ = request["environ"]
        where = f"{label} while handling {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        log.error("unhandled exception in %s", where, exc_info=exc)
        errors = environ.get("wsgi.errors")
        if errors is not None:
            errors.write(f"microwsgi: unhandled exception in {where}\n")
            errors.write("".join(traceback.format_exception(exc)))

    # -- development server -------------------------------------------------------------

    def start_server(
        self, host: str = "localhost", port: int = 9090, listen_msg: bool = False, **options: Any
    ) -> None:
        """Serve this app on the built-in HTTP/1.1 development server (blocks until stopped)."""
        try:
            serve(self, host=host, port=port, listen_msg=listen_msg, **options)
        except BindError as exc:
            # A script's user needs the reason, not a traceback through the server's internals.
            raise SystemExit(f"microwsgi: {exc}") from None


def _with_exc_info(start_response: StartResponse) -> StartResponse:
    # A second start_response is legal only with exc_info (PEP 3333); it re-raises when the
    # headers already went out, which is the right outcome then.
    def again(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, headers, exc_info or sys.exc_info())

    return again


def _raise_not_found(request: dict[str, Any]) -> Any:
    raise HTTPError(404, f"no route for {request['verb']} {request['path']}")


def _preflight_middleware(endpoints: Iterable[_Endpoint]) -> list[Middleware]:
    """The route middleware that answers CORS preflights itself (``cors(...)``), once each."""
    found: list[Middleware] = []
    for endpoint in endpoints:
        for mw in endpoint.middleware:
            if getattr(mw, "answers_preflight", False) and mw not in found:
                found.append(mw)
    return found


def _answer_options(allow: str) -> Handler:
    def options(request: dict[str, Any]) -> Any:
        return None, 204, [("Allow", allow)]

    return options


def _refuse_method(allow: str) -> Handler:
    def refuse(request: dict[str, Any]) -> Any:
        raise HTTPError(
            405, f"{request['verb']} is not allowed for {request['path']}", [("Allow", allow)]
        )

    return refuse
