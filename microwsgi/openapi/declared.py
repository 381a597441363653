"""What a route declares about its input and output, checked at registration.

``register(..., body=T, query=Q, returns=R, status=N)`` makes a `Declared`. The status is checked
here: a final status, 200..599, and not one that carries no body (204, 304) when an answer type
is declared too. Each type is handed to pydantic v2 (``validation.py``), so a type pydantic
cannot handle, or a ``query=`` type whose fields are not scalars or lists of scalars, is refused
at the decorator line, naming the route. pydantic is the ``validation`` extra, loaded by the
first route that declares a type and by no other; a missing one is an ImportError naming the
extra. A route that declares only ``status=`` needs no pydantic.

`Declared.validating(handler)` is what ``chains.py`` runs innermost in the route's chain, in the
handler's place; the OpenAPI document (``document.py``) reads the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from .._http import status_code
from ..response import Delegate

if TYPE_CHECKING:
    from .validation import AnswerType, BodyType, QueryType

__all__: list[str] = []

Handler = Callable[[dict[str, Any]], Any]

EXTRA = "pip install 'microwsgi[validation]'"


def type_name(annotation: Any) -> str:
    """How messages name a declared type: ``Todo``, ``list[Todo]``."""
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


class Declared:
    """A route's declared input and output: each type ready to validate, or None."""

    __slots__ = ("body", "query", "returns", "spec", "status")

    def __init__(
        self,
        spec: str,
        *,
        body: Any = None,
        query: Any = None,
        returns: Any = None,
        status: int | None = None,
    ) -> None:
        self.spec = spec
        self.status = _check_status(spec, status, returns)
        self.body: BodyType | None = None
        self.query: QueryType | None = None
        self.returns: AnswerType | None = None
        if body is None and query is None and returns is None:
            return
        try:
            from .validation import AnswerType, BodyType, QueryType
        except ImportError as exc:
            if not (exc.name or "").startswith("pydantic"):
                raise
            given = [f"{role}={type_name(t)}" for role, t in _types(body, query, returns)]
            raise ImportError(
                f"route {spec!r} declares {', '.join(given)}, which needs pydantic v2: {EXTRA}"
            ) from exc
        if body is not None:
            self.body = BodyType(spec, body)
        if query is not None:
            self.query = QueryType(spec, query)
        if returns is not None:
            self.returns = AnswerType(spec, returns)

    def validating(self, handler: Handler) -> Handler:
        """`handler` behind the declared checks: what the route's chain calls in its place."""
        if self.body is None and self.query is None and self.returns is None:
            status = self.status

            def with_default_status(request: dict[str, Any]) -> Any:
                return with_status(handler(request), status)

            return with_default_status
        from .validation import validating

        return validating(handler, self)


def _types(body: Any, query: Any, returns: Any) -> list[tuple[str, Any]]:
    roles = (("body", body), ("query", query), ("returns", returns))
    return [(role, annotation) for role, annotation in roles if annotation is not None]


def _check_status(spec: str, status: object, returns: Any) -> int | None:
    if status is None:
        return None
    try:
        code = status_code(status)
    except ValueError as exc:
        raise ValueError(f"route {spec!r}: {exc}") from None
    if code < 200:
        raise ValueError(f"route {spec!r}: status={code} is not a final status (200..599)")
    if returns is not None and code in (204, 304):
        raise ValueError(
            f"route {spec!r}: a {code} answer has no body, so it cannot declare returns="
        )
    return code


def with_status(rv: Any, status: int | None) -> Any:
    """A return value given the declared status, unless it gives its own (a tuple) or
    answers by itself (a werkzeug Response, a mounted app's answer)."""
    if status is None or type(rv) is tuple or isinstance(rv, (Response, Delegate)):
        return rv
    return rv, status
