"""Route groups, and the registration API that `Server` and its groups share.

``api = server.group('/api', middleware)`` returns a `Group`: routes registered on it are served
under the prefix, behind the group's middleware (inside the server's before-all middleware,
outside the route's own), and groups nest, their prefixes and middleware adding up from the
outermost group in. A route path is appended to the prefix as written: ``GET /`` in ``/api`` is
``/api/``, and the empty path ``GET `` is ``/api`` itself.

`Registrar` is the API both offer: `register`, `register_handler`, the verb shortcuts (`get`,
`post`, `put`, `patch`, `delete`) and `group`. It only turns what a group is given into what the
server records, through the server's `RouteTable` (``table.py``); compiling and serving the
routes is ``chains.py``'s and ``app.py``'s business. A route's declared input and output types
(``body=``, ``query=``, ``returns=``, ``status=``) are checked and kept by
``openapi/declared.py``, loaded only by a route that declares one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from ..chains import Handler, Middleware, check_middleware
from .spec import parse_spec
from .table import RouteTable

if TYPE_CHECKING:
    from ..openapi.declared import Declared

__all__ = ["Group"]

F = TypeVar("F", bound=Callable[..., Any])
MiddlewareArg = Middleware | Sequence[Middleware] | None
# What ``body=``, ``query=`` and ``returns=`` take: anything pydantic's TypeAdapter accepts (a
# model, a dataclass, a TypedDict, ``list[Item]``...), which no one Python type spells.
TypeForm = Any


class RouteDecorator(Protocol):
    """A verb shortcut, bound: ``server.get(path, middleware=None, *, name=None, ...)``."""

    def __call__(
        self,
        path: str,
        middleware: MiddlewareArg = None,
        *,
        name: str | None = None,
        body: TypeForm = None,
        query: TypeForm = None,
        returns: TypeForm = None,
        status: int | None = None,
    ) -> Callable[[F], F]: ...


def _declare(
    spec: str, body: TypeForm, query: TypeForm, returns: TypeForm, status: int | None
) -> Declared | None:
    """What a route declared about its input and output, checked; None when nothing."""
    if body is None and query is None and returns is None and status is None:
        return None  # PERF: a route that declares nothing imports nothing more
    from ..openapi.declared import Declared

    return Declared(spec, body=body, query=query, returns=returns, status=status)


class _VerbShortcut:
    """``registrar.get(path, ...)`` and friends: ``registrar.register('GET path', ...)``."""

    def __init__(self, verb: str) -> None:
        self.verb = verb

    @overload
    def __get__(self, registrar: None, owner: type) -> _VerbShortcut: ...

    @overload
    def __get__(self, registrar: Registrar, owner: type | None = None) -> RouteDecorator: ...

    def __get__(
        self, registrar: Registrar | None, owner: type | None = None
    ) -> RouteDecorator | _VerbShortcut:
        if registrar is None:  # looked up on the class
            return self
        verb = self.verb

        def shortcut(
            path: str,
            middleware: MiddlewareArg = None,
            *,
            name: str | None = None,
            body: TypeForm = None,
            query: TypeForm = None,
            returns: TypeForm = None,
            status: int | None = None,
        ) -> Callable[[F], F]:
            return registrar.register(
                f"{verb} {path}",
                middleware,
                name=name,
                body=body,
                query=query,
                returns=returns,
                status=status,
            )

        shortcut.__name__ = shortcut.__qualname__ = verb.lower()
        shortcut.__doc__ = f"Decorator: the same as ``register('{verb} ' + path, ...)``."
        return shortcut


class Registrar:
    """The registration API `Server` and `Group` share.

    `routes` is the table the routes are recorded in (the server's), `prefix` is prepended to
    every route path, and `groups` are the enclosing groups, outermost first.
    """

    def __init__(
        self, routes: RouteTable, prefix: str = "", groups: tuple[Group, ...] = ()
    ) -> None:
        self._routes = routes
        self._prefix = prefix
        self._groups = groups

    get = _VerbShortcut("GET")
    post = _VerbShortcut("POST")
    put = _VerbShortcut("PUT")
    patch = _VerbShortcut("PATCH")
    delete = _VerbShortcut("DELETE")

    def register(
        self,
        spec: str,
        middleware: MiddlewareArg = None,
        *,
        name: str | None = None,
        body: TypeForm = None,
        query: TypeForm = None,
        returns: TypeForm = None,
        status: int | None = None,
    ) -> Callable[[F], F]:
        """Decorator: route `spec` ('VERB /path') to the function, behind `middleware`.

        `name` is the route's name for `url_for` (by default the function's ``__name__``).
        `body`, `query` and `returns` declare types the JSON body, the query string and the
        answer are validated against (``request['body_model']``, ``request['query_model']``),
        `status` the status of an answer that gives none; each is in the OpenAPI document.
        The spec, the name, the declared types and the middleware are checked here, at the
        decorator line (middleware factories are called once to see that they return a
        handler); a decorator never applied to a function is warned about on the first request.
        """
        served = self._served_spec(spec)
        routes = self._routes
        routes.check(served, name)
        chain = check_middleware(f"route {served!r}", middleware)
        declared = _declare(served, body, query, returns, status)
        token = routes.expect(served)  # the next request warns if the decorator is never applied

        def decorator(handler: F) -> F:
            routes.applied(token)
            default_name = getattr(handler, "__name__", None)
            routes.add(served, handler, chain, self._groups, name, default_name, declared=declared)
            return handler

        return decorator

    def register_handler(
        self,
        spec: str,
        handler: Handler,
        middleware: MiddlewareArg = None,
        *,
        name: str | None = None,
        body: TypeForm = None,
        query: TypeForm = None,
        returns: TypeForm = None,
        status: int | None = None,
    ) -> None:
        """Route `spec` to `handler` (the non-decorator form of `register`)."""
        served = self._served_spec(spec)
        chain = check_middleware(f"route {served!r}", middleware)
        declared = _declare(served, body, query, returns, status)
        default_name = getattr(handler, "__name__", None)
        self._routes.add(
            served, handler, chain, self._groups, name, default_name, declared=declared
        )

    def group(
        self, prefix: str, middleware: MiddlewareArg = None, *, tags: Sequence[str] | None = None
    ) -> Group:
        """Routes under ``prefix``, behind ``middleware``, tagged `tags` in the OpenAPI
        document: see `Group`."""
        return Group(self, prefix, middleware, tags=tags)

    def _served_spec(self, spec: str) -> str:
        """`spec` with the prefix in front of its path, checked as written first."""
        if not self._groups:
            return spec
        if isinstance(spec, str) and spec.count(" ") == 1 and spec.endswith(" "):
            return spec + self._prefix  # 'GET ' is the group's own path
        verb, path = parse_spec(spec)
        return f"{verb} {self._prefix}{path}"


class Group(Registrar):
    """Routes under a prefix, behind shared middleware; made by ``server.group(...)``.

    It has the server's registration API (`register`, `register_handler`, `get`, `post`,
    `put`, `patch`, `delete`, `group`). The prefix is a path like ``/api`` (parameters
    allowed, no trailing ``/``, no catch-all); ``''`` or ``'/'`` adds no prefix, for a group
    that only shares middleware. `tags` (a list of strings) tag its routes in the OpenAPI
    document, an inner group's added to those of the groups around it.
    """

    def __init__(
        self,
        parent: Registrar,
        prefix: str,
        middleware: MiddlewareArg = None,
        *,
        tags: Sequence[str] | None = None,
    ) -> None:
        label = f"group {prefix!r}"
        if not isinstance(prefix, str):
            raise ValueError(f"group prefix must be a path like '/api', got {prefix!r}")
        prefix = "" if prefix == "/" else prefix
        if prefix:
            if prefix.endswith("/") or "*" in prefix:
                raise ValueError(
                    f"{label}: the prefix must be a path like '/api' or '/users/:id', "
                    "without a trailing '/' or a catch-all"
                )
            try:
                parent._routes.check(f"* {parent._prefix}{prefix}")
            except ValueError as exc:
                raise ValueError(f"{label}: {exc}") from None
        self.middleware = check_middleware(label, middleware)
        self.tags = _check_tags(label, tags)
        super().__init__(parent._routes, parent._prefix + prefix, (*parent._groups, self))

    @property
    def prefix(self) -> str:
        """The full prefix routes get, the enclosing groups' included."""
        return self._prefix

    def __repr__(self) -> str:
        return f"<Group {self._prefix or '/'!r}>"


def _check_tags(label: str, tags: Sequence[str] | None) -> tuple[str, ...]:
    """A group's OpenAPI tags as a tuple; ValueError for anything but a list of strings."""
    if tags is None:
        return ()
    if isinstance(tags, str) or not all(isinstance(tag, str) and tag for tag in tags):
        raise ValueError(f"{label}: tags must be a list of non-empty strings, like ['todos']")
    return tuple(tags)
