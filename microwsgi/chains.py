"""Routes compiled into ready-to-call chains: what runs for a matched path and verb.

Registration (``app.py``) records, per path pattern, a `Resource`: one `Endpoint` per verb (the
handler and its own middleware) or a mounted app. On the first request each resource is compiled
once into `Chain`s: the before-all middleware outermost, then the endpoint's middleware, then the
handler, with a guard at each ``next`` boundary that turns exceptions into answers, so middleware
always gets a value back, and that notices a middleware dropping the answer its ``next`` gave.
Compiling also builds the automatic answers: HEAD through GET, OPTIONS with ``Allow`` (behind
the route's CORS middleware, so preflights are answered) and 405.

Turning an exception into an answer is ``failures.py``'s business; matching paths is the router's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .checks import warn_dropped_answer
from .errors import HTTPError
from .request import Request
from .routing import ANY_VERB, VERBS

__all__: list[str] = []

Handler = Callable[[dict[str, Any]], Any]
Middleware = Callable[[Handler], Handler]
ErrorAnswer = Callable[[dict[str, Any], BaseException, str], Any]

_ALL_VERBS = ", ".join(sorted(VERBS))


class Endpoint:
    """One registered verb at one pattern, as the user declared it."""

    __slots__ = ("handler", "label", "middleware")

    def __init__(self, handler: Handler, middleware: list[Middleware], label: str) -> None:
        self.handler = handler
        self.middleware = middleware
        self.label = label


class Chain:
    """A compiled middleware chain ending in a handler, and the label logs name it by."""

    __slots__ = ("call", "label")

    def __init__(self, call: Handler, label: str) -> None:
        self.call = call
        self.label = label


class Resource:
    """Everything registered at one path pattern; `dispatch` is filled by compilation."""

    __slots__ = ("dispatch", "endpoints", "fallback", "mounted", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.endpoints: dict[str, Endpoint] = {}
        self.mounted: Chain | None = None
        self.dispatch: dict[str, Chain] = {}
        self.fallback: Chain | None = None

    def allowed(self) -> str:
        if ANY_VERB in self.endpoints:
            return _ALL_VERBS
        verbs = set(self.endpoints) | {"OPTIONS"}
        if "GET" in verbs:
            verbs.add("HEAD")
        return ", ".join(sorted(verbs))


class ChainBuilder:
    """Compiles resources into chains around `before_all`, answering errors with `answer_error`."""

    def __init__(self, before_all: list[Middleware], answer_error: ErrorAnswer) -> None:
        self.before_all = before_all
        self.answer_error = answer_error

    def compile(self, resource: Resource) -> None:
        """Fill `resource.dispatch` (verb -> chain) and its `fallback` (any other verb)."""
        if resource.mounted is not None:
            resource.dispatch, resource.fallback = {}, resource.mounted
            return
        dispatch = {
            verb: self.chain(ep.handler, ep.middleware, ep.label)
            for verb, ep in resource.endpoints.items()
        }
        allow = resource.allowed()
        if "GET" in dispatch:
            dispatch.setdefault("HEAD", dispatch["GET"])
        fallback = dispatch.pop(ANY_VERB, None)
        if "OPTIONS" not in dispatch and fallback is None:
            # A route's cors(...) middleware must also see the preflights it answers.
            preflight = _preflight_middleware(resource.endpoints.values())
            dispatch["OPTIONS"] = self.chain(
                _answer_options(allow), preflight, f"OPTIONS {resource.pattern}"
            )
        if fallback is None:
            fallback = self.chain(_refuse_method(allow), [], f"405 {resource.pattern}")
        resource.dispatch, resource.fallback = dispatch, fallback

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
            request._answered = False
            try:
                rv = inner(request)
            except Exception as exc:
                rv = answer_error(request, exc, label)
            if rv is None and warn is not None and request._answered:
                warn(request["environ"])
                warn = None  # once per route and middleware
            request._answered = rv is not None
            return rv

        return guarded


def raise_not_found(request: dict[str, Any]) -> Any:
    """The handler behind every path no route matches."""
    raise HTTPError(404, f"no route for {request['verb']} {request['path']}")


def _preflight_middleware(endpoints: Iterable[Endpoint]) -> list[Middleware]:
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
