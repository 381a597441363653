"""Route names, and URL building: `url_for(name, **params)` turns a name back into a path.

Every route has a name: the one given with ``name=``, else its handler's ``__name__`` (a handler
without one, such as a `functools.partial`, has none). PyMicroHTTP code reuses function names, so
a default name never fails registration; a name on two path patterns is ambiguous only when
`url_for` is asked for it. A name given with ``name=`` wins over default names, and giving one
that another pattern was already given is refused at registration. One name on several verbs of
one pattern is one name.

A URL is built from the pattern: each parameter through its converter's ``to_url``, checked
against the converter's pattern (so the URL routes back), then percent-encoded (RFC 3986 §3.3:
sub-delims, ``:`` and ``@`` stay as they are); a ``*rest`` keeps its slashes; the remaining
keyword arguments become the query string, in the order given. Matching is the router's job.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .converters import Converter
from .spec import parse_pattern

__all__: list[str] = []

# RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
_SEGMENT_SAFE = "!$&'()*+,;=:@"

UrlFor = Callable[..., str]


class _Template:
    """A pattern ready to be filled: static segments percent-encoded once, parameters."""

    __slots__ = ("parts",)

    def __init__(self, pattern: str, converters: Mapping[str, Converter]) -> None:
        self.parts: list[str | tuple[str, Converter | None, bool]] = []
        for segment in parse_pattern(pattern):
            if segment.name is None:
                self.parts.append(quote(segment.text, safe=_SEGMENT_SAFE))
            else:
                converter = converters[segment.converter] if segment.converter else None
                self.parts.append((segment.name, converter, segment.catchall))

    def build(self, route: str, spec: str, params: dict[str, Any]) -> str:
        """The path with `params` filled in; the parameters used are removed from `params`."""
        segments = []
        for part in self.parts:
            if isinstance(part, str):
                segments.append(part)
                continue
            name, converter, catchall = part
            if name not in params:
                raise LookupError(f"url_for({route!r}): missing parameter {name!r} for {spec!r}")
            value = params.pop(name)
            text = converter.to_url(value) if converter is not None else str(value)
            if catchall:
                segments.append(quote(text, safe="/" + _SEGMENT_SAFE))
                continue
            problem = _segment_problem(text, converter)
            if problem:
                raise ValueError(
                    f"url_for({route!r}): parameter {name!r}={value!r} {problem}, so the URL "
                    f"would not reach {spec!r}"
                )
            segments.append(quote(text, safe=_SEGMENT_SAFE))
        return "/" + "/".join(segments)


def _segment_problem(text: object, converter: Converter | None) -> str | None:
    if not isinstance(text, str):
        return f"became {text!r} through to_url, not text"
    if not text:
        return "is empty"
    if "/" in text:  # a server decodes %2F before routing: the segment would split in two
        return "contains '/'"
    if converter is not None and converter.regex.fullmatch(text) is None:
        return f"gives {text!r}, which is not a <{converter.name}> segment"
    return None


class RouteNames:
    """One server's route names, and the URL templates of the patterns they name."""

    def __init__(self, converters: Mapping[str, Converter]) -> None:
        self._converters = converters
        # A name leads to the spec of the route that has it, and to its pattern.
        self._given: dict[str, tuple[str, str]] = {}  # names given with name=
        self._default: dict[str, dict[str, str]] = {}  # handler names: pattern -> spec
        # PERF: made on the first url_for of a pattern, so registering stays one parse.
        self._templates: dict[str, _Template] = {}

    def check(self, name: str | None, spec: str, pattern: str) -> None:
        """Refuse a ``name=`` that is not text, or that another pattern was already given."""
        if name is None:
            return
        if not isinstance(name, str) or not name:
            raise ValueError(f"route {spec!r}: name must be a non-empty string, got {name!r}")
        taken = self._given.get(name)
        if taken is not None and taken[1] != pattern:
            raise ValueError(
                f"route {spec!r}: name {name!r} is already given to {taken[0]!r}; "
                "choose another name"
            )

    def add(self, name: str | None, given: bool, spec: str, pattern: str) -> None:
        """Record that the route `spec` (at `pattern`) is called `name` (checked by `check`)."""
        if name is None:
            return
        if given:
            self._given.setdefault(name, (spec, pattern))
        else:
            self._default.setdefault(name, {}).setdefault(pattern, spec)

    def url_for(self, name: str, params: Mapping[str, Any]) -> str:
        """The app-relative URL of the route called `name`; extra `params` make the query."""
        spec, pattern = self._given.get(name) or self._default_route(name)
        template = self._templates.get(pattern)
        if template is None:
            template = self._templates[pattern] = _Template(pattern, self._converters)
        unused = dict(params)
        path = template.build(name, spec, unused)
        query = [(key, value) for key, value in unused.items() if value is not None]
        return f"{path}?{urlencode(query, doseq=True)}" if query else path

    def _default_route(self, name: str) -> tuple[str, str]:
        by_pattern = self._default.get(name)
        if not by_pattern:
            known = [*self._given, *self._default]
            close = difflib.get_close_matches(str(name), known, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise LookupError(f"url_for: no route is named {name!r}{hint}")
        if len(by_pattern) > 1:
            specs = " and ".join(repr(spec) for spec in by_pattern.values())
            raise LookupError(
                f"url_for: the route name {name!r} is ambiguous: it names {specs}; give the "
                "one to build its own name with name=..."
            )
        ((pattern, spec),) = by_pattern.items()
        return spec, pattern


def script_url_for(url_for: UrlFor, script_name: str) -> UrlFor:
    """`url_for` with the request's SCRIPT_NAME in front, for links inside a mounted app."""
    try:
        raw = script_name.encode("latin-1")  # PEP 3333: bytes decoded as latin-1
    except UnicodeEncodeError:
        raw = script_name.encode("utf-8")
    prefix = quote(raw, safe="/" + _SEGMENT_SAFE)

    def url_for_here(name: str, /, **params: Any) -> str:
        return prefix + url_for(name, **params)

    return url_for_here
