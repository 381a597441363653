"""The `VERB /path` route grammar and the router that maps a request path to what was registered.

Grammar (PyMicroHTTP's, made precise):

- a spec is ``VERB /path`` with exactly one space; VERB is ``*`` or one of `VERBS`;
- the path starts with ``/``; segments are separated by ``/``; no empty segments except a
  single trailing slash (``/hello/`` and ``/hello`` are different routes);
- a segment ``:name`` (``name`` a Python identifier) captures that whole segment;
- a final segment ``*name`` captures the rest of the path, slashes included (at least one
  character is not required: ``/files/`` gives ``name == ''``);
- ``:`` or ``*`` anywhere else in a segment is an error;
- a segment starting with ``<`` or ``{`` is another framework's parameter (Flask's ``<id>``,
  FastAPI's ``{id}``): an error whose message shows the microwsgi spelling (``:id``).

Matching cost depends on the number of path segments, not on the number of routes: routes
without parameters live in one dict keyed by the full path; the others in a segment tree
(static edges in a dict, then one parameter edge, then one catch-all). Static segments win over
parameters whatever the registration order; the tree backtracks so that a static prefix that
leads nowhere still lets a parameter route match.

The router knows nothing about verbs or handlers: it maps a pattern to a *target* object the
application owns (one per pattern) and hands it back with the captured parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__: list[str] = []

VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
ANY_VERB = "*"

T = TypeVar("T")


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
    _check_path(spec, path)
    return verb, path


def _check_path(spec: str, path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"route spec {spec!r}: path {path!r} must start with '/'")
    if any(ch.isspace() for ch in path) or "?" in path or "#" in path:
        raise ValueError(f"route spec {spec!r}: path {path!r} contains whitespace, '?' or '#'")
    segments = _segments(path)
    names: set[str] = set()
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment[:1] in ("<", "{"):
            native = _native_spec(spec)
            hint = f"write {native!r}" if native != spec else "write a parameter as ':name'"
            raise ValueError(
                f"route spec {spec!r}: {segment!r} is not a microwsgi parameter; {hint}"
            )
        if segment == "" and not last:
            raise ValueError(f"route spec {spec!r}: empty path segment in {path!r}")
        if segment[:1] in (":", "*"):
            name = segment[1:]
            if not name.isidentifier():
                raise ValueError(
                    f"route spec {spec!r}: parameter {segment!r} needs a name that is a "
                    "Python identifier"
                )
            if segment[0] == "*" and not last:
                raise ValueError(
                    f"route spec {spec!r}: catch-all {segment!r} must be the last segment"
                )
            if name in names:
                raise ValueError(f"route spec {spec!r}: parameter {name!r} appears twice")
            names.add(name)
        elif ":" in segment or "*" in segment:
            raise ValueError(
                f"route spec {spec!r}: ':' and '*' may only start a whole segment, "
                f"not appear inside {segment!r}"
            )


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


def is_static(path: str) -> bool:
    """True when the (already checked) pattern has no parameters."""
    return not any(segment[:1] in (":", "*") for segment in _segments(path))


class _Node(Generic[T]):
    """One position in the segment tree."""

    __slots__ = ("catchall", "catchall_names", "names", "param", "param_name", "static", "target")

    def __init__(self) -> None:
        self.static: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.param_name: str | None = None
        self.catchall: T | None = None
        self.target: T | None = None
        # Parameter names, in path order, of the pattern ending here and of the catch-all here.
        self.names: tuple[str, ...] = ()
        self.catchall_names: tuple[str, ...] = ()


class Router(Generic[T]):
    """Maps path patterns to targets; `find(path)` returns ``(target, params)`` or None."""

    def __init__(self) -> None:
        # Parameterless patterns, by full path: public so the app's hot path can look up the
        # commonest routes without a call.
        self.static: dict[str, T] = {}
        self._root: _Node[T] = _Node()

    def get(self, pattern: str) -> T | None:
        """The target already registered for exactly this pattern, if any."""
        if is_static(pattern):
            return self.static.get(pattern)
        node = self._root
        for segment in _segments(pattern):
            if segment.startswith("*"):
                return node.catchall
            nxt = node.param if segment.startswith(":") else node.static.get(segment)
            if nxt is None:
                return None
            node = nxt
        return node.target

    def add(self, pattern: str, target: T, spec: str | None = None) -> None:
        """Register `target` for `pattern` (checked by `parse_spec`); one target per pattern."""
        label = spec or pattern
        if self.get(pattern) is not None:
            raise ValueError(f"route {label!r}: pattern {pattern!r} is already registered")
        if is_static(pattern):
            self.static[pattern] = target
            return
        node = self._root
        names: list[str] = []
        for segment in _segments(pattern):
            if segment.startswith("*"):
                node.catchall = target
                node.catchall_names = (*names, segment[1:])
                return
            if segment.startswith(":"):
                name = segment[1:]
                if node.param is None:
                    node.param, node.param_name = _Node(), name
                elif node.param_name != name:
                    raise ValueError(
                        f"route {label!r}: parameter ':{name}' conflicts with ':{node.param_name}'"
                        " registered at the same position"
                    )
                names.append(name)
                node = node.param
            else:
                node = node.static.setdefault(segment, _Node())
        node.target = target
        node.names = tuple(names)

    def find(self, path: str) -> tuple[T, dict[str, str]] | None:
        """Match a decoded request path; parameters come back as a fresh dict."""
        target = self.static.get(path)
        if target is not None:
            return target, {}
        return self.find_dynamic(path)

    def find_dynamic(self, path: str) -> tuple[T, dict[str, str]] | None:
        """`find` for a path already known not to be a parameterless route."""
        if path[:1] != "/":
            return None
        node = self._root
        params: dict[str, str] = {}
        # PERF: a greedy descent, the branch a depth-first search tries first, filling the
        # parameters as it goes, without recursion. It succeeds for almost every real request;
        # a dead end or a catch-all falls back to the backtracking walk.
        for segment in path[1:].split("/"):
            child = node.static.get(segment)
            if child is None:
                child = node.param
                if child is None or not segment:
                    break
                params[node.param_name] = segment  # type: ignore[index]
            node = child
        else:
            if node.target is not None:
                return node.target, params
        segments = _segments(path)
        values: list[str] = []
        found = self._walk(self._root, segments, 0, values)
        if found is None:
            return None
        target, names = found
        return target, dict(zip(names, values, strict=True))

    def _walk(
        self, node: _Node[T], segments: list[str], index: int, values: list[str]
    ) -> tuple[T, tuple[str, ...]] | None:
        if index == len(segments):
            return (node.target, node.names) if node.target is not None else None
        segment = segments[index]
        child = node.static.get(segment)
        if child is not None:
            found = self._walk(child, segments, index + 1, values)
            if found is not None:
                return found
        if node.param is not None and segment:
            values.append(segment)
            found = self._walk(node.param, segments, index + 1, values)
            if found is not None:
                return found
            values.pop()
        if node.catchall is not None:
            values.append("/".join(segments[index:]))
            return node.catchall, node.catchall_names
        return None

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
            if node.param is not None:
                stack.append(node.param)
