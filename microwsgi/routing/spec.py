"""The `VERB /path` route grammar: a route spec checked and split into its segments.

Grammar (PyMicroHTTP's, made precise):

- a spec is ``VERB /path`` with exactly one space; VERB is ``*`` or one of `VERBS`;
- the path starts with ``/``; segments are separated by ``/``; no empty segments except a
  single trailing slash (``/hello/`` and ``/hello`` are different routes);
- a segment ``:name`` (``name`` a Python identifier) captures that whole segment as text;
- a segment ``:name<type>`` captures it only when it matches the converter ``type``
  (``converters.py``: ``int``, ``float``, ``uuid`` or one of the application's), converted;
- a final segment ``*name`` captures the rest of the path, slashes included (at least one
  character is not required: ``/files/`` gives ``name == ''``);
- ``:`` or ``*`` anywhere else in a segment is an error. No parameter matches an empty segment;
- a segment starting with ``<`` or ``{`` is another framework's parameter (Flask's ``<id>``,
  FastAPI's ``{id}``): an error whose message shows the microwsgi spelling (``:id``).

Every error is a `ValueError` naming the spec and the problem, raised at registration. Which
types exist is the router's to check (``router.py``); matching paths is the router's too.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

__all__: list[str] = []

VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
ANY_VERB = "*"


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
    for segment in split_path(path):
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
    texts = split_path(path)
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


def split_path(path: str) -> list[str]:
    """The segments of a path that starts with '/', as text ('/a/b/' -> ['a', 'b', ''])."""
    return path[1:].split("/")


def is_static(segments: tuple[Segment, ...]) -> bool:
    """Whether a checked pattern has no parameters."""
    return all(segment.name is None for segment in segments)
