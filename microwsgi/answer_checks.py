"""What the wire takes from a handler's answer, checked where the handler can still be named.

A status is 100-599; a header name is an HTTP token and a value holds no CR, LF or NUL (the
engine's rules, ``_http.py``). An answer that breaks one is an `InvalidResponse`, which the
application logs with the handler or middleware that gave it (``failures.py``), rather than an
error deep in the server once the head is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any, Final

from ._http import check_status_line, status_code, valid_field_name, valid_field_value
from ._wsgi import StartResponse

__all__: list[str] = []  # the package's own, imported by name where used

Headers = list[tuple[str, str]]


class InvalidResponse(TypeError):
    """A handler or middleware returned something that cannot become an HTTP response."""


def checked_status(value: Any) -> int:
    """A handler's status (an int or an HTTPStatus, 100-599) as an int."""
    try:
        return status_code(value)
    except ValueError as exc:
        raise InvalidResponse(str(exc)) from None


# PERF: an application uses few header names and status lines: each is checked once (at most
# this many are remembered), so that checking an answer costs a set lookup per name instead of
# a regex match.
_CHECKED_NAMES: set[str] = set()
_CHECKED_STATUS_LINES: set[str] = set()
_MAX_CHECKED: Final = 512
_VALUE = itemgetter(1)
_BAD_NAME = "the name is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
_BAD_VALUE = "the value contains CR, LF or NUL"


def _good_name(name: str) -> bool:
    """Whether a response header may have this name (remembered when it may)."""
    if name in _CHECKED_NAMES:
        return True
    if not valid_field_name(name):
        return False
    if len(_CHECKED_NAMES) < _MAX_CHECKED:
        _CHECKED_NAMES.add(name)
    return True


def header_pairs(headers: Any) -> Headers:
    """Headers given as a dict or as (name, value) pairs, checked, as a list of pairs.

    The one rule for every place a user hands us headers: a returned tuple, `abort`. A name
    must be a token and a value free of CR, LF and NUL: the engine's rule (``_http.py``),
    checked here so that the error names the handler that gave the header.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    if not isinstance(pairs, Iterable) or isinstance(pairs, (str, bytes)):
        raise InvalidResponse(f"headers must be a dict or a list of pairs, got {headers!r}")
    checked: Headers = []
    for pair in pairs:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise InvalidResponse(f"header {pair!r} is not a (name, value) pair")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidResponse(f"header {pair!r}: name and value must be str")
        if not _good_name(name):
            raise InvalidResponse(f"header {pair!r}: {_BAD_NAME}")
        if not valid_field_value(value):
            raise InvalidResponse(f"header {pair!r}: {_BAD_VALUE}")
        checked.append((name, value))
    return checked


def checked_start_response(start_response: StartResponse) -> StartResponse:
    """`start_response` for an answer that is a WSGI app (a werkzeug `Response`, a mounted
    app): its status line and headers are checked by the rules `header_pairs` applies, and the
    first one the wire would refuse is an `InvalidResponse` naming it."""

    def start(status: str, headers: Headers, *exc_info: Any) -> Callable[[bytes], object]:
        if status not in _CHECKED_STATUS_LINES:
            try:
                check_status_line(status)
            except ValueError as exc:
                raise InvalidResponse(str(exc)) from None
            if len(_CHECKED_STATUS_LINES) < _MAX_CHECKED:
                _CHECKED_STATUS_LINES.add(status)
        check_wire_headers(headers)
        return start_response(status, headers, *exc_info)

    return start


def check_wire_headers(headers: Headers) -> Headers:
    """`headers` as they are, if the wire would take them; else an `InvalidResponse` naming
    the first it would refuse (`header_pairs`'s rules, for headers that did not come through
    it: a WSGI app's, or those a middleware added to a prepared answer)."""
    try:
        for name, value in headers:
            if name not in _CHECKED_NAMES and not _good_name(name):
                raise InvalidResponse(f"header {(name, value)!r}: {_BAD_NAME}")
        # PERF: one check for every value: CR, LF and NUL are single characters, so the
        # values joined hold one exactly when a value does.
        if not valid_field_value("".join(map(_VALUE, headers))):
            bad = next(pair for pair in headers if not valid_field_value(pair[1]))
            raise InvalidResponse(f"header {bad!r}: {_BAD_VALUE}")
    except InvalidResponse:
        raise
    except (TypeError, ValueError):  # not (str, str) pairs
        raise InvalidResponse(f"headers must be (str, str) pairs, got {headers!r:.200}") from None
    return headers
