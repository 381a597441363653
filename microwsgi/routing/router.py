"""The router: a request path mapped to the resource registered for it, and its parameters.

Precedence, position by position from the left: a static segment, then typed parameters in
registration order, then the untyped ``:name``, then ``*rest``. `Router.find_all` yields every
pattern matching a path in that order; `Router.find` the first. Matching cost depends on the
number of path segments, not on the number of routes: patterns without parameters live in one
dict keyed by the full path; the others in a segment tree (static edges in a dict, then the
parameter edges, then one catch-all), searched depth first.

The router knows nothing about verbs or handlers: it maps a pattern to a *resource*, an object
the application owns (one per pattern), and hands it back with the captured parameters;
choosing among the matches by verb is the application's business. Patterns are checked by the
grammar (``spec.py``); parameter types are ``converters.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from .converters import BUILTIN_CONVERTERS, NO_MATCH, Converter
from .spec import Segment, is_static, parse_pattern, split_path

__all__: list[str] = []

T = TypeVar("T")


class _Edge(NamedTuple):
    """A parameter edge: the type a segment must have (None: any), the name, where it leads."""

    converter: Converter | None
    name: str
    node: _Node[Any]

    @property
    def written(self) -> str:
        """The parameter as a pattern spells it."""
        kind = self.converter
        return f":{self.name}" if kind is None else f":{self.name}<{kind.name}>"


class _Node(Generic[T]):
    """One position in the segment tree."""

    __slots__ = (
        "catchall",
        "catchall_names",
        "edges",
        "names",
        "param",
        "param_name",
        "resource",
        "static",
    )

    def __init__(self) -> None:
        self.static: dict[str, _Node[T]] = {}
        # Parameter edges in precedence order: typed ones as registered, then the untyped one.
        self.edges: list[_Edge] = []
        # PERF: the untyped edge when it is the only parameter edge, so the greedy descent
        # of `find` takes it with two attribute reads; None otherwise.
        self.param: _Node[T] | None = None
        self.param_name: str | None = None
        self.catchall: T | None = None
        self.resource: T | None = None
        # Parameter names, in path order, of the pattern ending here and of the catch-all here.
        self.names: tuple[str, ...] = ()
        self.catchall_names: tuple[str, ...] = ()

    def edge(self, converter: str | None) -> _Edge | None:
        """The parameter edge of this type (None: the untyped one), if there is one."""
        for edge in self.edges:
            if (edge.converter.name if edge.converter else None) == converter:
                return edge
        return None

    def take(self, segment: str, params: dict[str, Any]) -> _Node[Any] | None:
        """The child behind the first parameter edge that takes `segment`, its value put in
        `params`; None if no edge takes it."""
        for converter, name, child in self.edges:
            value = segment if converter is None else converter.convert(segment)
            if value is not NO_MATCH:
                params[name] = value
                return child
        return None

    def add_edge(self, converter: Converter | None, name: str) -> _Node[T]:
        child: _Node[T] = _Node()
        if converter is None:
            self.edges.append(_Edge(None, name, child))
        else:  # typed edges keep registration order, ahead of the untyped one
            untyped = len(self.edges) if self.edge(None) is None else len(self.edges) - 1
            self.edges.insert(untyped, _Edge(converter, name, child))
        only = self.edges[0] if len(self.edges) == 1 else None
        if only is not None and only.converter is None:
            self.param, self.param_name = only.node, only.name
        else:
            self.param, self.param_name = None, None
        return child


class Router(Generic[T]):
    """Maps path patterns to resources; `find(path)` returns ``(resource, params)`` or None.

    `converters` are the parameter types patterns may name (the built-in ones by default); the
    router reads the mapping when a pattern is added, so types added to it later are seen.
    """

    def __init__(self, converters: Mapping[str, Converter] | None = None) -> None:
        self.converters = BUILTIN_CONVERTERS if converters is None else converters
        # Parameterless patterns, by full path: public so the app's hot path can look up the
        # commonest routes without a call.
        self.static: dict[str, T] = {}
        self._root: _Node[T] = _Node()

    def get(self, pattern: str) -> T | None:
        """The resource registered for this pattern, or for one differing only in names."""
        segments = parse_pattern(pattern)
        if is_static(segments):
            return self.static.get(pattern)
        node = self._root
        for segment in segments:
            if segment.catchall:
                return node.catchall
            if segment.name is None:
                nxt = node.static.get(segment.text)
            else:
                edge = node.edge(segment.converter)
                nxt = edge.node if edge is not None else None
            if nxt is None:
                return None
            node = nxt
        return node.resource

    def add(self, pattern: str, resource: T, spec: str | None = None) -> None:
        """Register `resource` for `pattern` (checked by `parse_spec`); one per pattern."""
        label = spec or pattern
        if self.get(pattern) is not None:
            raise ValueError(f"route {label!r}: pattern {pattern!r} is already registered")
        segments = parse_pattern(pattern)
        if is_static(segments):
            self.static[pattern] = resource
            return
        node = self._root
        names: list[str] = []
        for segment in segments:
            if segment.catchall:
                node.catchall = resource
                node.catchall_names = (*names, segment.text[1:])
                return
            if segment.name is None:
                node = node.static.setdefault(segment.text, _Node())
                continue
            node = self._param_edge(node, segment, label)
            names.append(segment.name)
        node.resource = resource
        node.names = tuple(names)

    def check_types(self, pattern: str, label: str) -> None:
        """Refuse a pattern naming a parameter type the router does not know."""
        for segment in parse_pattern(pattern):
            if segment.converter is not None:
                self._converter(segment, label)

    def _converter(self, segment: Segment, label: str) -> Converter:
        converter = self.converters.get(segment.converter)  # type: ignore[arg-type]
        if converter is None:
            known = ", ".join(sorted(self.converters))
            raise ValueError(
                f"route {label!r}: unknown parameter type {segment.converter!r} in "
                f"{segment.text!r} (known: {known}; add one with server.converter())"
            )
        return converter

    def _param_edge(self, node: _Node[T], segment: Segment, label: str) -> _Node[T]:
        """The child behind `segment`'s parameter edge at `node`, made if new."""
        edge = node.edge(segment.converter)
        if edge is None:
            converter = None if segment.converter is None else self._converter(segment, label)
            return node.add_edge(converter, segment.name)  # type: ignore[arg-type]
        if edge.name != segment.name:
            raise ValueError(
                f"route {label!r}: parameter {segment.text!r} conflicts with "
                f"{edge.written!r} registered at the same position"
            )
        return edge.node

    def find(self, path: str) -> tuple[T, dict[str, Any]] | None:
        """The first match for a decoded request path; parameters come back as a fresh dict."""
        resource = self.static.get(path)
        if resource is not None:
            return resource, {}
        return self.find_dynamic(path)

    def find_dynamic(self, path: str) -> tuple[T, dict[str, Any]] | None:
        """`find` for a path already known not to be a parameterless route."""
        if path[:1] != "/":
            return None
        node = self._root
        params: dict[str, Any] = {}
        # PERF: a greedy descent, the branch a depth-first search tries first (at each segment
        # the first edge that takes it), filling the parameters as it goes, without recursion.
        # It succeeds for almost every request; a dead end or a catch-all falls back to the
        # full search.
        for segment in path[1:].split("/"):
            child = node.static.get(segment)
            if child is None:
                child = node.param
                if child is None or not segment:
                    # PERF: typed edges are looked at only where there are some, so the
                    # untyped descent above stays two attribute reads per segment.
                    child = node.take(segment, params) if segment and node.edges else None
                    if child is None:
                        break
                else:
                    params[node.param_name] = segment  # type: ignore[index]
            node = child
        else:
            if node.resource is not None:
                return node.resource, params
        return next(self._search(self._root, split_path(path), 0, []), None)

    def find_all(self, path: str) -> Iterator[tuple[T, dict[str, Any]]]:
        """Every pattern matching a decoded request path, in precedence order."""
        resource = self.static.get(path)
        if resource is not None:  # a parameterless pattern beats any other matching the path
            yield resource, {}
        if path[:1] == "/":
            yield from self._search(self._root, split_path(path), 0, [])

    def _search(
        self, node: _Node[T], segments: list[str], index: int, values: list[Any]
    ) -> Iterator[tuple[T, dict[str, Any]]]:
        if index == len(segments):
            if node.resource is not None:
                yield node.resource, dict(zip(node.names, values, strict=True))
            return
        segment = segments[index]
        child = node.static.get(segment)
        if child is not None:
            yield from self._search(child, segments, index + 1, values)
        if segment:
            for converter, _, child in node.edges:
                value = segment if converter is None else converter.convert(segment)
                if value is not NO_MATCH:
                    values.append(value)
                    yield from self._search(child, segments, index + 1, values)
                    values.pop()
        if node.catchall is not None:
            rest = "/".join(segments[index:])
            yield node.catchall, dict(zip(node.catchall_names, [*values, rest], strict=True))

    def resources(self) -> Iterator[T]:
        """Every registered resource (used to compile dispatch tables)."""
        yield from self.static.values()
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.resource is not None:
                yield node.resource
            if node.catchall is not None:
                yield node.catchall
            stack.extend(node.static.values())
            stack.extend(edge.node for edge in node.edges)
