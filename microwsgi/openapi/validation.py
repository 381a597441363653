"""Declared types applied: the body and query validated before the handler, the answer after.

Each declared type becomes a pydantic v2 `TypeAdapter` once, at registration, with its JSON
Schema (a type that has none is refused then, not when the document is asked for). Per request,
in the route's chain just before the handler, so that its middleware (an auth check) answers
first:

- ``body=T``: a body not sent as JSON is a 415, invalid JSON a 400 (``request['json']``'s rule),
  a value that does not fit T a 422; what fits is ``request['body_model']``;
- ``query=T``: the query string as a dict, where a field T declares as a list gets every value
  of its key (one value makes a one-item list) and any other key its first value, is validated
  into ``request['query_model']``; an absent key takes the field's default; a misfit is a 422;
- ``returns=T``: the answer (alone, or first in a ``(value, status[, headers])`` tuple) is
  validated and serialised through T, so fields T does not declare never reach the client; an
  answer that does not fit is the route's bug: a 500, logged naming the route and the first
  error; a value T serialises to neither an object nor an array is sent as JSON all the same;
- ``status=N``: the status of an answer that gives none (``declared.with_status``).

Every 422 is the JSON error shape plus ``errors``: one ``{"loc", "msg", "type"}`` per problem,
``loc`` starting with ``"body"`` or ``"query"`` and going on with pydantic's own. The rejected
input is not echoed back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from werkzeug.wrappers import Response

from ..answer_checks import InvalidResponse, header_pairs
from ..errors import HTTPError
from ..request import sends_json
from ..response import JSON_TYPE, Delegate
from .declared import type_name, with_status

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaMode

    from .declared import Declared

__all__: list[str] = []

Handler = Callable[[dict[str, Any]], Any]

# What a 422's message calls each part of the request.
_PARTS = {"body": "request body", "query": "query string"}


class Invalid(HTTPError):
    """A 422: the request's body or query string does not fit the route's declared type.

    `errors` lists every problem pydantic found, as ``{"loc", "msg", "type"}`` dicts whose
    ``loc`` starts with `part`; an ``@server.errorhandler(422)`` gets this error and can read it.
    """

    def __init__(self, part: str, exc: ValidationError) -> None:
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        self.errors = [
            {"loc": [part, *problem["loc"]], "msg": problem["msg"], "type": problem["type"]}
            for problem in problems
        ]
        count = len(self.errors)
        super().__init__(
            422, f"the {_PARTS[part]} is invalid: {count} error{'' if count == 1 else 's'}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errors": self.errors}


class DeclaredType:
    """One declared type: its pydantic adapter, and its JSON Schema in `mode`."""

    __slots__ = ("adapter", "annotation", "mode", "schema")

    def __init__(self, spec: str, role: str, annotation: Any, mode: JsonSchemaMode) -> None:
        self.annotation = annotation
        self.mode = mode
        try:
            self.adapter: TypeAdapter[Any] = TypeAdapter(annotation)
            self.schema = self.adapter.json_schema(mode=mode)
        except Exception as exc:  # pydantic's own errors, or whatever odd input raised
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TypeError(
                f"route {spec!r}: {role}={type_name(annotation)} is not a type pydantic can "
                f"validate and describe: {problem}"
            ) from None

    def validate(self, part: str, value: Any) -> Any:
        """`value` validated; a 422 naming `part` ('body', 'query') when it does not fit."""
        try:
            return self.adapter.validate_python(value)
        except ValidationError as exc:
            raise Invalid(part, exc) from None


class BodyType(DeclaredType):
    """``body=T``: the JSON body, validated into ``request['body_model']``."""

    __slots__ = ()

    def __init__(self, spec: str, annotation: Any) -> None:
        super().__init__(spec, "body", annotation, "validation")

    def read(self, request: dict[str, Any]) -> Any:
        value = request["json"]  # invalid JSON is a 400 here
        if value is None and not sends_json(request):
            raise HTTPError(415, "send the request body as JSON (Content-Type: application/json)")
        return self.validate("body", value)


class QueryType(DeclaredType):
    """``query=T``: the query string, validated into ``request['query_model']``."""

    __slots__ = ("lists",)

    def __init__(self, spec: str, annotation: Any) -> None:
        super().__init__(spec, "query", annotation, "validation")
        self.lists = query_lists(f"route {spec!r}: query={type_name(annotation)}", self.schema)

    def read(self, request: dict[str, Any]) -> Any:
        query = request["query"]
        lists = self.lists
        values = {key: query.getlist(key) if key in lists else query[key] for key in query}
        return self.validate("query", values)


class AnswerType(DeclaredType):
    """``returns=T``: the handler's answer, validated and serialised through T."""

    __slots__ = ("spec",)

    def __init__(self, spec: str, annotation: Any) -> None:
        super().__init__(spec, "returns", annotation, "serialization")
        self.spec = spec

    def answer(self, rv: Any, status: int | None) -> Any:
        """The return value `rv` with its body serialised through T; the declared `status`
        for an answer that gives none."""
        if isinstance(rv, (Response, Delegate)):
            return rv  # an answer that sends itself: nothing to serialise
        if type(rv) is not tuple:
            body, headers = self._serialise(rv)
            return with_status(body, status) if headers is None else (body, status or 200, headers)
        if len(rv) not in (2, 3):
            return rv  # not a valid answer: the renderer names the mistake
        body, headers = self._serialise(rv[0])
        extra = rv[2] if len(rv) == 3 else None
        if headers is not None:
            headers += [pair for pair in _pairs(extra) if pair[0].lower() != "content-type"]
        elif extra is not None:
            headers = extra
        return (body, rv[1]) if headers is None else (body, rv[1], headers)

    def _serialise(self, value: Any) -> tuple[Any, list[tuple[str, str]] | None]:
        """The value as T serialises it: an object or an array as a dict or a list, which the
        app's JSON encoder sends; anything else as JSON bytes, with their Content-Type."""
        adapter = self.adapter
        try:
            valid = adapter.validate_python(value, from_attributes=True)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"])) or "the value"
            raise InvalidResponse(
                f"route {self.spec!r}: the answer does not fit returns="
                f"{type_name(self.annotation)} ({exc.error_count()} errors); first, at "
                f"{where}: {first['msg']}"
            ) from None
        dumped = adapter.dump_python(valid, mode="json", by_alias=True)
        if type(dumped) is dict or type(dumped) is list:
            return dumped, None
        return adapter.dump_json(valid, by_alias=True), [("Content-Type", JSON_TYPE)]


def _pairs(headers: Any) -> list[tuple[str, str]]:
    return [] if headers is None else header_pairs(headers)


def validating(handler: Handler, declared: Declared) -> Handler:
    """`handler` behind the route's declared checks (see the module docstring)."""
    body, query, returns, status = declared.body, declared.query, declared.returns, declared.status

    def validated(request: dict[str, Any]) -> Any:
        if body is not None:
            request["body_model"] = body.read(request)
        if query is not None:
            request["query_model"] = query.read(request)
        rv = handler(request)
        if returns is not None:
            return returns.answer(rv, status)
        return with_status(rv, status)

    return validated


# -- the shape a query= type must have ----------------------------------------------------------

_SCALARS = frozenset({"string", "integer", "number", "boolean", "null"})


def query_lists(owner: str, schema: Mapping[str, Any]) -> frozenset[str]:
    """The fields of a ``query=`` type declared as lists; ValueError naming `owner` unless the
    type has named fields, each a scalar or a list of scalars (all a query string can carry)."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        raise ValueError(f"{owner} must have named fields (a model, a dataclass, a TypedDict)")
    definitions = schema.get("$defs", {})
    lists = set()
    for field, field_schema in properties.items():
        kind = _kind(field_schema, definitions)
        if kind is None:
            raise ValueError(
                f"{owner}: field {field!r} must be a scalar or a list of scalars, as a query "
                "string carries nothing else"
            )
        if kind == "list":
            lists.add(field)
    return frozenset(lists)


def _kind(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> str | None:
    """'scalar', 'list' (of scalars), or None for what a query string cannot carry."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = definitions.get(ref.removeprefix("#/$defs/"), {})
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        kinds = {_kind(option, definitions) for option in options}
        if None in kinds:
            return None
        return "list" if "list" in kinds else "scalar"
    if "enum" in schema or "const" in schema or schema.get("type") in _SCALARS:
        return "scalar"
    if schema.get("type") == "array" and _kind(schema.get("items", {}), definitions) == "scalar":
        return "list"
    return None
