"""The `VERB /path` route grammar, parameter types, and the router that maps a path to targets.

Grammar (PyMicroHTTP's, made precise):

- a spec is ``VERB /path`` with exactly one space; VERB is ``*`` or one of `VERBS`;
- the path starts with ``/``; segments are separated by ``/``; no empty segments except a
  single trailing slash (``/hello/`` and ``/hello`` are different routes);
- a segment ``:name`` (``name`` a Python identifier) captures that whole segment as text;
- a segment ``:name<type>`` captures it only when it matches the converter ``type``
  (`Converter`: ``int``, ``float``, ``uuid`` or one of the application's), converted;
- a final segment ``*name`` captures the rest of the path, slashes included (at least one
  character is not required: ``/files/`` gives ``name == ''``);
- ``:`` or ``*`` anywhere else in a segment is an error. No parameter matches an empty segment;
- a segment starting with ``<`` or ``{`` is another framework's parameter (Flask's ``<id>``,
  FastAPI's ``{id}``): an error whose message shows the microwsgi spelling (``:id``).

Precedence, position by position from the left: a static segment, then typed parameters in
registration order, then the untyped ``:name``, then ``*rest``. `Router.find_all` yields every
pattern matching a path in that order; `Router.find` the first. Matching cost depends on the
number of path segments, not on the number of routes: patterns without parameters live in one
dict keyed by the full path; the others in a segment tree (static edges in a dict, then the
parameter edges, then one catch-all), searched depth first.

The router knows nothing about verbs or handlers: it maps a pattern to a *target* object the
application owns (one per pattern) and hands it back with the captured parameters; choosing
among the matches by verb is the application's business.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, NamedTuple, TypeVar

__all__: list[str] = []

VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
ANY_VERB = "*"

T = TypeVar("T")


# -- parameter types ------------------------------------------------------------------------


@dataclass(eq=False)
class Converter:
    """A parameter type: the regex a whole segment must match, and conversions both ways.

    `to_python` turns the matched (percent-decoded) segment into the parameter's value; a
    `ValueError` from it means the segment does not match, like a failed regex. `to_url` turns
    a value back into segment text for URL building.
    """

    name: str
    pattern: str
    to_python: Callable[[str], Any] = str
    to_url: Callable[[Any], str] = str
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        label = f"converter {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"{label}: the name must be a Python identifier, like 'slug'")
        if not isinstance(self.pattern, str):
            raise ValueError(f"{label}: pattern must be a regex string, got {self.pattern!r}")
        try:
            self.regex = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(
                f"{label}: pattern {self.pattern!r} is not a valid regex: {exc}"
            ) from None
        for role, function in (("to_python", self.to_python), ("to_url", self.to_url)):
            if not callable(function):
                raise ValueError(f"{label}: {role} {function!r} is not callable")

    def convert(self, segment: str) -> Any:
        """The segment's value, or `NO_MATCH` when the segment is not of this type."""
        if self.regex.fullmatch(segment) is None:
            return NO_MATCH
        try:
            return self.to_python(segment)
        except ValueError:
            return NO_MATCH


NO_MATCH: Any = object()


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # '1e999' is a float literal, but not a usable number
        raise ValueError(text)
    return value


_HEX = "[0-9a-fA-F]"
BUILTIN_CONVERTERS: Mapping[str, Converter] = {
    converter.name: converter
    for converter in (
        Converter("int", "-?[0-9]+", int),
        Converter("float", r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", _finite_float),
        Converter(
            "uuid", f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}", uuid.UUID
        ),
    )
}


# -- the grammar ----------------------------------------------------------------------------


class Segment(NamedTuple):
    """One segment of a checked pattern."""

    text: str  # as written
    name: str | None = None  # the parameter's name; None for a static segment
    converter: str | None = None  # the type of a typed parameter
    catchall: bool = False


def parse_spec(spec: object) -> tuple[str, str]:
    """Split and check a route spec, returning ``(verb, path)``; ValueError names what is wrong."""
    if not isinstance(spec, str):
        raise ValueError(f"route spec must be a string like 'GET /hello', got {spec!r}")
    if spec.count(" ") != 1:
        problem = "is empty" if not spec.strip() else "must have exactly one space"
        raise ValueError(f"route spec {spec!r} {problem}: expected 'VERB /path'")
    verb, path = spec.split(" ")
    if verb != ANY_VERB and verb not in VERBS:
        known = ", ".join(sorted(VERBS))
        raise ValueError(f"route spec {spec!r}: unknown verb {verb!r} (use * or one of {known})")
    for segment in _segments(path):
        if segment[:1] in ("<", "{"):
            native = _native_spec(spec)
            hint = f"write {native!r}" if native != spec else "write a parameter as ':name'"
            raise ValueError(
                f"route spec {spec!r}: {segment!r} is not a microwsgi parameter; {hint}"
            )
    try:
        parse_pattern(path)
    except ValueError as exc:
        raise ValueError(f"route spec {spec!r}: {exc}") from None
    return verb, path


_SPACE_OR_QUERY = re.compile(r"[\s?#]")


# PERF: registering a route reads its pattern several times (the spec check, the router, the
# types), one right after the other: a small cache parses each pattern once.
@lru_cache(maxsize=64)
def parse_pattern(path: str) -> tuple[Segment, ...]:
    """The segments of a route's path; ValueError says what breaks the grammar."""
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    if _SPACE_OR_QUERY.search(path):
        raise ValueError(f"path {path!r} contains whitespace, '?' or '#'")
    texts = _segments(path)
    segments = []
    names: set[str] = set()
    for index, text in enumerate(texts):
        last = index == len(texts) - 1
        if text == "" and not last:
            raise ValueError(f"empty path segment in {path!r}")
        segment = _parse_segment(text, last)
        if segment.name is not None:
            if segment.name in names:
                raise ValueError(f"parameter {segment.name!r} appears twice")
            names.add(segment.name)
        segments.append(segment)
    return tuple(segments)


def _parse_segment(text: str, last: bool) -> Segment:
    head = text[:1]
    if head not in (":", "*"):
        if ":" in text or "*" in text:
            raise ValueError(
                f"':' and '*' may only start a whole segment, not appear inside {text!r}"
            )
        return Segment(text)
    name, converter = text[1:], None
    if name.endswith(">") and "<" in name:
        name, _, converter = name[:-1].partition("<")
        if head == "*":
            raise ValueError(
                f"catch-all {text!r} cannot have a type: it is always the rest of the path, as text"
            )
        if not converter.isidentifier():
            raise ValueError(
                f"parameter {text!r} needs a type name that is a Python identifier, like ':id<int>'"
            )
    if not name.isidentifier():
        raise ValueError(f"parameter {text!r} needs a name that is a Python identifier")
    if head == "*" and not last:
        raise ValueError(f"catch-all {text!r} must be the last segment")
    return Segment(text, name, converter, head == "*")


# Flask and Django write <name> or <converter:name>; Starlette and FastAPI {name} or {name:type}.
_FOREIGN_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\{(\w+)(?::(\w+))?\}")


def _native_spec(spec: str) -> str:
    """`spec` with other frameworks' parameters spelled the microwsgi way, for error hints."""

    def native(match: re.Match[str]) -> str:
        kind = match.group(1) or match.group(4)
        name = match.group(2) or match.group(3)
        if kind == "path":  # the rest of the path, slashes included
            return f"*{name}"
        return f":{name}" if kind in (None, "str", "string") else f":{name}<{kind}>"

    return _FOREIGN_PARAM.sub(native, spec)


def _segments(path: str) -> list[str]:
    return path[1:].split("/")


def _is_static(segments: tuple[Segment, ...]) -> bool:
    return all(segment.name is None for segment in segments)


# -- the router -----------------------------------------------------------------------------


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
        "static",
        "target",
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
        self.target: T | None = None
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
    """Maps path patterns to targets; `find(path)` returns ``(target, params)`` or None.

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
        """The target registered for this pattern, or for one differing only in names."""
        segments = parse_pattern(pattern)
        if _is_static(segments):
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
        return node.target

    def add(self, pattern: str, target: T, spec: str | None = None) -> None:
        """Register `target` for `pattern` (checked by `parse_spec`); one target per pattern."""
        label = spec or pattern
        if self.get(pattern) is not None:
            raise ValueError(f"route {label!r}: pattern {pattern!r} is already registered")
        segments = parse_pattern(pattern)
        if _is_static(segments):
            self.static[pattern] = target
            return
        node = self._root
        names: list[str] = []
        for segment in segments:
            if segment.catchall:
                node.catchall = target
                node.catchall_names = (*names, segment.text[1:])
                return
            if segment.name is None:
                node = node.static.setdefault(segment.text, _Node())
                continue
            node = self._param_edge(node, segment, label)
            names.append(segment.name)
        node.target = target
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
        target = self.static.get(path)
        if target is not None:
            return target, {}
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
            if node.target is not None:
                return node.target, params
        return next(self._search(self._root, _segments(path), 0, []), None)

    def find_all(self, path: str) -> Iterator[tuple[T, dict[str, Any]]]:
        """Every pattern matching a decoded request path, in precedence order."""
        target = self.static.get(path)
        if target is not None:  # a parameterless pattern beats any other matching the path
            yield target, {}
        if path[:1] == "/":
            yield from self._search(self._root, _segments(path), 0, [])

    def _search(
        self, node: _Node[T], segments: list[str], index: int, values: list[Any]
    ) -> Iterator[tuple[T, dict[str, Any]]]:
        if index == len(segments):
            if node.target is not None:
                yield node.target, dict(zip(node.names, values, strict=True))
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

    def targets(self) -> Iterator[T]:
        """Every registered target (used to compile dispatch tables)."""
        yield from self.static.values()
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.target is not None:
                yield node.target
            if node.catchall is not None:
                yield node.catchall
            stack.extend(node.static.values())
            stack.extend(edge.node for edge in node.edges)
