"""The routes one server records: resources by pattern, their names, unapplied decorators.

`RouteTable` is the narrow interface between registration and the server: `Server` and its
`Group`s (``groups.py``) record routes through it, and the server compiles and serves what it
holds. It checks each route as it is recorded (the spec, the parameter types, the name, a
duplicate, a clash with a mounted app) and tells the server, through the callback it was made
with, that its compiled chains are out of date. Compiling chains is ``chains.py``'s business,
matching paths the router's, describing the table ``listing.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..chains import Endpoint, Handler, Middleware, Resource, Scope
from ..checks import UnappliedRoutes
from .converters import BUILTIN_CONVERTERS, Converter
from .router import Router
from .spec import parse_spec
from .urls import RouteNames

if TYPE_CHECKING:
    from ..openapi.declared import Declared

__all__: list[str] = []


class RouteTable:
    """Every route of one server, checked as recorded; `changed()` is called on each change.

    `router` maps patterns to `Resource`s (one per pattern, holding an `Endpoint` per verb),
    `names` holds the route names for `url_for`, `converters` the parameter types routes may
    name, `unapplied` the ``register(...)`` decorators not yet applied to a function.
    """

    def __init__(self, changed: Callable[[], None]) -> None:
        self.converters: dict[str, Converter] = dict(BUILTIN_CONVERTERS)
        self.router: Router[Resource] = Router(self.converters)
        self.names = RouteNames(self.converters)
        self.unapplied = UnappliedRoutes()
        self.changed = changed

    def check(self, spec: str, name: str | None = None) -> tuple[str, str]:
        """Check a route as served and the name it is given; return its verb and pattern."""
        verb, pattern = parse_spec(spec)
        self.router.check_types(pattern, spec)
        self.names.check(name, spec, pattern)
        return verb, pattern

    def add(
        self,
        spec: str,
        handler: Handler,
        chain: list[Middleware],
        groups: tuple[Scope, ...] = (),
        name: str | None = None,
        default_name: object = None,
        description: str | None = None,
        *,
        declared: Declared | None = None,
        internal: bool = False,
        static: bool = False,
    ) -> None:
        """Record a route; `spec` is the route as served (group prefixes included), `chain`
        its checked middleware (``check_middleware``), `groups` the enclosing groups, `name`
        the one given with ``name=``, `default_name` the one it has otherwise, `description`
        what listings call the handler if not its name, `declared` its declared input and
        output (``openapi/declared.py``); `internal` marks a route the framework registers for
        itself (health, metrics, the API documentation), `static` a static folder's: API
        documents leave both out."""
        verb, pattern = self.check(spec, name)
        if not callable(handler):
            raise ValueError(f"route {spec!r}: handler {handler!r} is not callable")
        resource = self.resource(pattern, spec)
        if verb in resource.endpoints:
            raise ValueError(f"route {spec!r} is already registered")
        if resource.mounted is not None:
            raise ValueError(f"route {spec!r}: {pattern!r} is taken by a mounted app")
        if name is None and isinstance(default_name, str):
            name, given = default_name, False
        else:
            given = name is not None
        resource.endpoints[verb] = Endpoint(
            handler,
            chain,
            spec,
            groups,
            name,
            description,
            declared=declared,
            internal=internal,
            static=static,
        )
        self.names.add(name, given, spec, pattern)
        self.changed()

    def expect(self, spec: str) -> object:
        """Note a ``register(spec)`` decorator made but not yet applied; a token for `applied`.

        Until it is applied, the next request warns that the route does not exist.
        """
        token = self.unapplied.add(spec)
        self.changed()
        return token

    def applied(self, token: object) -> None:
        """The decorator `expect` returned `token` for was applied to a function."""
        self.unapplied.applied(token)

    def resource(self, pattern: str, spec: str) -> Resource:
        """The resource at `pattern`, made if new; ValueError when another pattern differing
        only in parameter names holds that place."""
        resource = self.router.get(pattern)
        if resource is None:
            resource = Resource(pattern)
            self.router.add(pattern, resource, spec)
        elif resource.pattern != pattern:
            raise ValueError(
                f"route {spec!r}: {pattern!r} conflicts with the already registered "
                f"{resource.pattern!r} (same place, different parameter names)"
            )
        return resource

    def add_converter(self, converter: Converter) -> None:
        """Let routes registered from now on name `converter` as a parameter type."""
        if converter.name in self.converters:
            raise ValueError(f"converter {converter.name!r} is already defined")
        self.converters[converter.name] = converter

    def resources(self) -> Iterator[Resource]:
        """Every resource, for compiling and listing."""
        return self.router.resources()
