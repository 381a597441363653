"""Routes compiled into ready-to-call chains: what runs for a matched path and verb.

Registration (``app.py``) records, per path pattern, a `Resource`: one `Endpoint` per verb (the
handler, its own middleware, the groups it was registered through) or a mounted app. On the
first request each resource is compiled once into `Chain`s: the before-all middleware outermost,
then each enclosing group's middleware from the outermost group in, then the endpoint's own, then
the handler, with a guard at each ``next`` boundary that turns exceptions into answers, so
middleware always gets a value back, and that notices a middleware dropping the answer its
``next`` gave. HEAD runs through GET's chain.

The automatic answers for a path whose matching routes lack the request's verb (OPTIONS: 204
with ``Allow``; anything else: 405) are chains too, per set of matching patterns: ``Allow``
lists the verbs of every matching route, and they run behind the middleware those routes share
(before-all, common groups) plus their CORS middleware, so preflights are answered.

Turning an exception into an answer is ``failures.py``'s business; matching paths is the router's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from .checks import check_factory, check_order, warn_dropped_answer
from .errors import HTTPError
from .request import Request
from .routing.spec import ANY_VERB

if TYPE_CHECKING:
    from .openapi.declared import Declared

__all__: list[str] = []

Handler = Callable[[dict[str, Any]], Any]
Middleware = Callable[[Handler], Handler]
ErrorAnswer = Callable[[dict[str, Any], BaseException, str], Any]

# The environ key under which the server leaves the `Chain` it matched, for what measures
# requests by route (``observability/metrics.py``).
ROUTE_KEY = "microwsgi.route"


def check_middleware(
    owner: str, middleware: Middleware | Sequence[Middleware] | None
) -> list[Middleware]:
    """The middleware given to a route or group, as a list; ValueError names `owner`, and
    TypeError a factory that does not return a handler (each is called once to see) or one
    listed before a middleware it must run inside."""
    if middleware is None:
        return []
    items: object = [middleware] if callable(middleware) else middleware
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{owner}: middleware must be a function or a list of functions")
    for item in items:
        if not callable(item):
            raise ValueError(f"{owner}: middleware {item!r} is not callable")
    for item in items:
        check_factory(owner, item)
    check_order(owner, items)
    return list(items)


class Scope(Protocol):
    """A group of routes, as chains see it: the middleware it adds, outermost first (and the
    OpenAPI tags it gives its routes, which the document reads)."""

    middleware: list[Middleware]
    tags: tuple[str, ...]


class Endpoint:
    """One registered verb at one pattern, as the user declared it.

    `declared` holds what the route declared about its input and output (``body=``,
    ``query=``, ``returns=``, ``status=``; ``openapi/declared.py``), None when nothing: `call`
    is then the handler itself, else the handler behind those checks, which the chain runs
    innermost, inside the route's middleware.
    """

    __slots__ = (
        "call",
        "declared",
        "description",
        "groups",
        "handler",
        "internal",
        "label",
        "middleware",
        "name",
        "spec",
        "static",
        "verb",
    )

    def __init__(
        self,
        handler: Handler,
        middleware: list[Middleware],
        spec: str,
        groups: tuple[Scope, ...] = (),
        name: str | None = None,
        description: str | None = None,
        *,
        declared: Declared | None = None,
        internal: bool = False,
        static: bool = False,
    ) -> None:
        self.handler = handler
        self.middleware = middleware  # the route's own
        self.spec = spec  # with the groups' prefixes: the route as served
        self.verb = spec.partition(" ")[0]
        self.groups = groups  # the enclosing groups, outermost first
        self.name = name
        self.description = description  # what route listings call the handler, if not its name
        # A route the framework registers for itself (``server.health()``, ``server.metrics()``):
        # served like any other, left out of what documents the app's API (OpenAPI).
        self.internal = internal
        self.static = static  # a static folder's route: files, not an operation of the API
        self.label = f"{getattr(handler, '__qualname__', repr(handler))} ({spec})"
        self.declared = declared
        self.call = handler if declared is None else declared.validating(handler)

    def stack(self, shared: int = 0) -> list[Middleware]:
        """The middleware between before-all and the handler, past the first `shared` groups."""
        if len(self.groups) <= shared:
            return self.middleware
        return [
            *(mw for group in self.groups[shared:] for mw in group.middleware),
            *self.middleware,
        ]


class Chain:
    """A compiled middleware chain ending in a handler, and the label logs name it by."""

    __slots__ = ("call", "label")

    def __init__(self, call: Handler, label: str) -> None:
        self.call = call
        self.label = label


class Resource:
    """Everything registered at one path pattern; `dispatch` and `any` are filled by compiling.

    `dispatch` maps a verb to its chain (HEAD to GET's unless HEAD has its own); `any` is the
    chain of a ``*`` route or a mounted app, serving every other verb.
    """

    __slots__ = ("any", "dispatch", "endpoints", "mounted", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.endpoints: dict[str, Endpoint] = {}
        self.mounted: Chain | None = None
        self.dispatch: dict[str, Chain] = {}
        self.any: Chain | None = None


class ChainBuilder:
    """Compiles resources into chains around `before_all`, answering errors with `answer_error`.

    It also keeps the automatic answers (OPTIONS, 405) for each set of patterns found to match
    a path none of whose routes has the request's verb: those for one pattern alone are built
    with it, those for several on first use.
    """

    def __init__(self, before_all: list[Middleware], answer_error: ErrorAnswer) -> None:
        self.before_all = before_all
        self.answer_error = answer_error
        self._automatic: dict[tuple[Resource, ...], tuple[Chain, Chain]] = {}
        self._lock = threading.Lock()

    def compile(self, resource: Resource) -> None:
        """Fill `resource.dispatch` (verb -> chain) and `resource.any` (every other verb)."""
        if resource.mounted is not None:
            resource.dispatch, resource.any = {}, resource.mounted
            return
        dispatch = {
            verb: self.chain(ep.call, ep.stack(), ep.label)
            for verb, ep in resource.endpoints.items()
        }
        if "GET" in dispatch:
            dispatch.setdefault("HEAD", dispatch["GET"])
        resource.any = dispatch.pop(ANY_VERB, None)
        resource.dispatch = dispatch
        if resource.any is None:
            self._automatic[(resource,)] = self._automatic_answers((resource,))

    def automatic(self, resources: tuple[Resource, ...], verb: str) -> Chain:
        """The automatic answer when `resources` match the path and none has `verb`."""
        answers = self._automatic.get(resources)
        if answers is None:
            with self._lock:
                answers = self._automatic.get(resources) or self._automatic_answers(resources)
                self._automatic[resources] = answers
        options, refuse = answers
        return options if verb == "OPTIONS" else refuse

    def _automatic_answers(self, resources: tuple[Resource, ...]) -> tuple[Chain, Chain]:
        """OPTIONS (204 with Allow) and 405, behind the middleware every matching route shares."""
        endpoints = [ep for resource in resources for ep in resource.endpoints.values()]
        shared = _shared_groups(endpoints)
        outer = [mw for group in shared for mw in group.middleware]
        allow = _allowed(endpoints)
        pattern = resources[0].pattern
        # A route's cors(...) middleware must also see the preflights it answers.
        preflight = _preflight_middleware(endpoints, len(shared))
        options = self.chain(_answer_options(allow), [*outer, *preflight], f"OPTIONS {pattern}")
        refuse = self.chain(_refuse_method(allow), outer, f"405 {pattern}")
        return options, refuse

    def chain(self, handler: Handler, middleware: list[Middleware], label: str) -> Chain:
        """`handler` behind the before-all middleware, then `middleware`, outermost first."""
        call = handler
        owner: Middleware | None = None  # the middleware whose handler `call` is
        for mw in reversed([*self.before_all, *middleware]):
            call = mw(self._guard(call, label, owner))
            if not callable(call):  # checked at registration; a factory may still change its mind
                raise TypeError(
                    f"middleware {mw!r} returned {call!r} instead of a handler ({label})"
                )
            owner = mw
        if owner is not None:  # the outermost middleware's answer is checked too
            call = self._guard(call, label, owner)
        return Chain(call, label)

    def _guard(self, inner: Handler, label: str, owner: Middleware | None) -> Handler:
        """Wrap a handler so that the middleware calling it gets errors back as answers.

        When `inner` is middleware `owner`'s handler, warn (once) if it returns None although
        the `next` it called returned an answer.
        """
        answer_error = self.answer_error
        # A route's own handler may answer None (204) on purpose: nothing to check then.
        warn = None if owner is None else partial(warn_dropped_answer, owner, label)

        def guarded(request: dict[str, Any]) -> Any:
            nonlocal warn
            if type(request) is not Request:  # a copy made by middleware: keep the lazy keys
                request = Request(request)
            # PERF: the note travels on the request (a slot write, ~17 ns) rather than in a
            # thread-local (~70 ns), as every middleware layer writes it twice per request.
            request.chain_answered = False
            try:
                rv = inner(request)
            except Exception as exc:
                rv = answer_error(request, exc, label)
            if rv is None and warn is not None and request.chain_answered:
                warn(request["environ"])
                warn = None  # once per route and middleware
            request.chain_answered = rv is not None
            return rv

        return guarded


def raise_not_found(request: dict[str, Any]) -> Any:
    """The handler behind every path no route matches."""
    raise HTTPError(404, f"no route for {request['verb']} {request['path']}")


def _shared_groups(endpoints: list[Endpoint]) -> tuple[Scope, ...]:
    """The enclosing groups every endpoint has in common, outermost first."""
    shared = endpoints[0].groups
    for endpoint in endpoints[1:]:
        depth = 0
        for mine, theirs in zip(shared, endpoint.groups, strict=False):
            if mine is not theirs:
                break
            depth += 1
        shared = shared[:depth]
    return shared


def _allowed(endpoints: list[Endpoint]) -> str:
    verbs = {ep.verb for ep in endpoints} | {"OPTIONS"}
    if "GET" in verbs:
        verbs.add("HEAD")
    return ", ".join(sorted(verbs))


def _preflight_middleware(endpoints: list[Endpoint], shared: int) -> list[Middleware]:
    """The middleware past the shared groups that answers CORS preflights (``cors(...)``)."""
    found: list[Middleware] = []
    for endpoint in endpoints:
        for mw in endpoint.stack(shared):
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
