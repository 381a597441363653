"""The OpenAPI 3.1 document of a server's routes: `Server.openapi()`.

One operation per route and verb, except what is not the application's API: mounted apps, static
folders, routes the framework registers for itself (``internal``: the documentation's own pages,
health, metrics), ``*`` routes (no OpenAPI method means "any"), and the automatic HEAD, OPTIONS
and 405 answers, which are no routes. For each operation:

- the path in OpenAPI form (``/items/:id<int>`` is ``/items/{id}``, ``*rest`` is ``{rest}``),
  its parameters typed from their converters: ``int`` an integer, ``float`` a number, ``uuid`` a
  string of format uuid, an untyped one or an application's converter a string matching its
  pattern;
- ``operationId`` the route's name (the handler's ``__name__`` unless given), made unique where
  names repeat: a name used by several operations gets the verb after it, and a number after
  that while it still repeats; ``summary`` the first line of the handler's docstring and
  ``description`` the rest; ``tags`` from the enclosing groups, outermost first;
- ``query=`` gives query parameters (required where the field has no default), ``body=`` the
  request body (JSON), ``returns=`` the schema of the success answer, whose status is
  ``status=`` (else 200); a route that validates documents its 422 and its error list; every
  operation documents the JSON error shape as its ``default`` answer (a 404, a 401...).

The declared types' JSON Schemas come from pydantic, all in one pass so that a model used in
several places is one entry under ``components/schemas`` referred to by ``$ref``. Declaring and
checking the types is ``declared.py``'s; this module only describes.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._http import reason_phrase
from ..routing.spec import ANY_VERB, parse_pattern

if TYPE_CHECKING:
    from ..chains import Endpoint, Resource
    from ..routing.converters import Converter
    from .validation import DeclaredType

__all__: list[str] = []

OPENAPI_VERSION = "3.1.0"
_JSON = "application/json"
_REF = "#/components/schemas/{model}"
# The order operations appear in under one path, as in listings.
_VERB_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# The built-in converters' schemas; anything else is a string matching its converter's pattern.
_PARAMETER_SCHEMAS: Mapping[str, dict[str, str]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}

_ERROR = {
    "type": "object",
    "description": "The JSON shape of every error answer.",
    "properties": {
        "status": {"type": "integer"},
        "error": {"type": "string"},
        "message": {"type": "string"},
    },
    "required": ["status", "error", "message"],
}
_PROBLEM = {
    "type": "object",
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
    "required": ["loc", "msg", "type"],
}


def build_document(
    resources: Iterable[Resource],
    converters: Mapping[str, Converter],
    *,
    title: str,
    version: str,
    info: Mapping[str, Any],
) -> dict[str, Any]:
    """The OpenAPI document of `resources` (see the module docstring)."""
    documented = [
        (openapi_path(resource.pattern), resource.pattern, endpoint)
        for resource in resources
        if resource.mounted is None
        for endpoint in resource.endpoints.values()
        if _documented(endpoint)
    ]
    _refuse_shared_operations(documented)
    endpoints = sorted(
        ((path, endpoint) for path, _, endpoint in documented),
        key=lambda item: (item[0], _VERB_ORDER.index(item[1].verb)),
    )
    schemas, components = _schemas(endpoint for _, endpoint in endpoints)
    context = _Context(converters, schemas, components)
    paths: dict[str, dict[str, Any]] = {}
    for (path, endpoint), operation_id in zip(endpoints, _operation_ids(endpoints), strict=True):
        paths.setdefault(path, {})[endpoint.verb.lower()] = context.operation(
            endpoint, operation_id
        )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, **info},
        "paths": paths,
        "components": {"schemas": _referenced(components, paths)},
    }


def _refuse_shared_operations(documented: list[tuple[str, str, Endpoint]]) -> None:
    """ValueError naming two routes that OpenAPI would see as one operation: the same verb on
    paths equal but for their parameters' types (``/a/:id<int>`` and ``/a/:id``) or names,
    which the router tells apart and a document cannot (OpenAPI 3.1 §4.8.8: such paths are
    identical). One would replace the other in silence."""
    first: dict[tuple[str, str], str] = {}
    for path, pattern, endpoint in documented:
        template = re.sub(r"\{[^}]*\}", "{}", path)
        earlier = first.setdefault((endpoint.verb, template), pattern)
        if earlier != pattern:
            raise ValueError(
                f"{endpoint.verb} {earlier} and {endpoint.verb} {pattern} would be one operation "
                f"in the OpenAPI document ({endpoint.verb} {template.replace('{}', '{...}')}): "
                "a document has one operation per path and verb, whatever the parameters' "
                "names and types. Give one of them another path, or make them one route"
            )


def _documented(endpoint: Endpoint) -> bool:
    return not (endpoint.internal or endpoint.static or endpoint.verb == ANY_VERB)


def openapi_path(pattern: str) -> str:
    """A route pattern in OpenAPI form: ``/items/:id<int>`` is ``/items/{id}``."""
    return "/" + "/".join(
        segment.text if segment.name is None else f"{{{segment.name}}}"
        for segment in parse_pattern(pattern)
    )


def _path_parameters(pattern: str, converters: Mapping[str, Converter]) -> list[dict[str, Any]]:
    parameters = []
    for segment in parse_pattern(pattern):
        if segment.name is None:
            continue
        if segment.converter is None:
            schema: dict[str, Any] = {"type": "string"}
        elif segment.converter in _PARAMETER_SCHEMAS:
            schema = dict(_PARAMETER_SCHEMAS[segment.converter])
        else:
            # A converter's pattern must match the whole segment; JSON Schema's is a search.
            schema = {"type": "string", "pattern": f"^(?:{converters[segment.converter].pattern})$"}
        parameters.append({"name": segment.name, "in": "path", "required": True, "schema": schema})
    return parameters


def _query_parameters(schema: Mapping[str, Any], components: Mapping[str, Any]) -> list[Any]:
    """One query parameter per field of a ``query=`` type (an object, maybe behind a $ref)."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = components[ref.rsplit("/", 1)[1]]
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append({**parameter, "schema": field})
    return parameters


def _schemas(
    endpoints: Iterable[Endpoint],
) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The JSON Schema of every declared type, by the id of its `DeclaredType`, and the
    component schemas they refer to; one pydantic pass, so shared models are one component."""
    declared: list[DeclaredType] = []
    for endpoint in endpoints:
        if endpoint.declared is not None:
            types = (endpoint.declared.body, endpoint.declared.query, endpoint.declared.returns)
            declared.extend(t for t in types if t is not None)
    if not declared:
        return {}, {}
    from pydantic import TypeAdapter

    inputs = [(id(t), t.mode, t.adapter) for t in declared]
    by_key, definitions = TypeAdapter.json_schemas(inputs, ref_template=_REF)
    schemas = {key: schema for (key, _), schema in by_key.items()}
    return schemas, dict(definitions.get("$defs", {}))


def _operation_ids(endpoints: list[tuple[str, Endpoint]]) -> list[str]:
    """Each operation's id: its route's name, or one made from its verb and path."""
    names = []
    for path, endpoint in endpoints:
        name = endpoint.name
        if not (isinstance(name, str) and name.isidentifier()):  # none, or a lambda's
            name = "_".join([endpoint.verb.lower(), *re.findall(r"\w+", path)])
        names.append(name)
    counts = Counter(names)
    names = [
        name if counts[name] == 1 else f"{name}_{endpoint.verb.lower()}"
        for name, (_, endpoint) in zip(names, endpoints, strict=True)
    ]
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


class _Context:
    """What every operation's description draws on: the parameter types, the declared types'
    schemas (by the id of their `DeclaredType`), the component schemas, with the error shapes
    added under names no application model has taken."""

    def __init__(
        self,
        converters: Mapping[str, Converter],
        schemas: Mapping[int, Any],
        components: dict[str, Any],
    ) -> None:
        self.converters = converters
        self.schemas = schemas
        self.components = components
        # An application's model of the same name wins; ours then say whose they are.
        prefix = "microwsgi." if {"HTTPError", "HTTPValidationError"} & components.keys() else ""
        error, invalid = f"{prefix}HTTPError", f"{prefix}HTTPValidationError"
        components[error] = _ERROR
        components[invalid] = {
            "description": "A 422: the request's body or query string does not fit its type.",
            "allOf": [
                {"$ref": _REF.format(model=error)},
                {
                    "type": "object",
                    "properties": {"errors": {"type": "array", "items": _PROBLEM}},
                    "required": ["errors"],
                },
            ],
        }
        self.error = _json_content({"$ref": _REF.format(model=error)})
        self.invalid = _json_content({"$ref": _REF.format(model=invalid)})

    def operation(self, endpoint: Endpoint, operation_id: str) -> dict[str, Any]:
        operation: dict[str, Any] = {"operationId": operation_id}
        tags = list(dict.fromkeys(tag for group in endpoint.groups for tag in group.tags))
        if tags:
            operation["tags"] = tags
        doc = inspect.getdoc(endpoint.handler)
        if doc:
            summary, _, description = doc.partition("\n")
            operation["summary"] = summary.strip()
            if description.strip():
                operation["description"] = description.strip()
        parameters = _path_parameters(endpoint.spec.partition(" ")[2], self.converters)
        declared = endpoint.declared
        status = (declared.status if declared is not None else None) or 200
        success: dict[str, Any] = {"description": reason_phrase(status)}
        responses: dict[str, Any] = {str(status): success}
        if declared is not None:
            if declared.query is not None:
                query = self.schemas[id(declared.query)]
                parameters += _query_parameters(query, self.components)
            if declared.body is not None:
                body = self.schemas[id(declared.body)]
                operation["requestBody"] = {"required": True, **_json_content(body)}
            if declared.returns is not None:
                success.update(_json_content(self.schemas[id(declared.returns)]))
            if declared.body is not None or declared.query is not None:
                responses["422"] = {"description": "The request does not fit", **self.invalid}
        responses["default"] = {"description": "An error", **self.error}
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = responses
        return operation


def _json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"content": {_JSON: {"schema": schema}}}


def _referenced(components: dict[str, Any], paths: Mapping[str, Any]) -> dict[str, Any]:
    """The component schemas something refers to (a ``query=`` model itself becomes parameters,
    not a schema), sorted by name."""
    wanted: set[str] = set()
    pending = [json.dumps(paths)]
    while pending:
        text = pending.pop()
        for name in re.findall(r'"#/components/schemas/([^"]+)"', text):
            if name not in wanted and name in components:
                wanted.add(name)
                pending.append(json.dumps(components[name]))
    return {name: components[name] for name in sorted(wanted)}
