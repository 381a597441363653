"""HTTP rules that the framework and the server share, each written once.

This module owns the pieces of RFC 9110/9112 that more than one part of the package applies:
reason phrases and status lines, the status a handler gives and the status line a WSGI app
gives, the token grammar, what a response field name and value may hold, the Content-Length
grammar, and the default size limits of a request head. It imports nothing from the package (and
only the standard library), so the framework can use it without loading the server and the
server without loading the framework. Parsing and framing themselves belong to
``server/protocol/``; what a status or a length means to a handler belongs to the framework.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Final

__all__: list[str] = []  # the package's own rules, imported by name where used

# RFC 9110 §15: a status code without a registered phrase still gets a valid status line;
# the phrase is advisory (RFC 9112 §4), so "Unknown" is as good as any.
_PHRASES: Final = {status.value: status.phrase for status in HTTPStatus}
_STATUS_LINES: Final = {code: f"{code} {phrase}" for code, phrase in _PHRASES.items()}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for `status`, or 'Unknown' for codes without one."""
    return _PHRASES.get(status, "Unknown")


def status_line(status: int) -> str:
    """'200 OK' for 200, as PEP 3333's `start_response` wants it."""
    return _STATUS_LINES.get(status) or f"{status} Unknown"


# RFC 9110 §15: a status code is three digits, the first 1 to 5; one outside is invalid. What
# the engine may send of them is its own rule on top (a 1xx is never a final answer).
STATUS_CODES: Final = range(100, 600)


def status_code(value: object) -> int:
    """The status a handler gave, as an int; ValueError unless an int (or `HTTPStatus`) in
    `STATUS_CODES`."""
    if type(value) is not int and not isinstance(value, HTTPStatus):
        raise ValueError(f"status must be an int, got {value!r}")
    if value not in STATUS_CODES:
        raise ValueError(f"status {value} is outside 100..599")
    return int(value)


def is_error_status(value: object) -> bool:
    """Whether `value` is a client or server error status, 400..599 (RFC 9110 §15.5, §15.6):
    what `HTTPError` carries and error handlers are registered for."""
    return isinstance(value, int) and 400 <= value <= 599


def check_status_line(line: object) -> tuple[int, str]:
    """The code and reason of a WSGI status line ('200 OK' -> (200, 'OK')); ValueError for one
    that is not three ASCII digits, a space and the reason (PEP 3333; RFC 9112 §4, where the
    reason may be empty), or whose code is not in `STATUS_CODES`."""
    # str.isdigit alone would take '²00' or '٢٠٠' (int() reads the latter as 200).
    if type(line) is not str or line[3:4] != " " or not (line[:3].isascii() and line[:3].isdigit()):
        raise ValueError(f"invalid WSGI status {line!r}: three digits, a space, the reason")
    code = int(line[:3])
    if code not in STATUS_CODES:
        raise ValueError(f"invalid WSGI status {line!r}: {code} is outside 100..599")
    return code, line[4:]


# RFC 9110 §5.6.2: token = 1*tchar (methods, field names, transfer codings, cookie names).
TCHAR: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN_RE: Final = re.compile(TCHAR + "+")


def valid_field_name(name: str) -> bool:
    """Whether a response field may have this name: a token (RFC 9110 §5.1)."""
    return TOKEN_RE.fullmatch(name) is not None


def valid_field_value(value: str) -> bool:
    """Whether a response field may have this value as is: no CR, LF or NUL, which would
    split the head or be refused (RFC 9110 §5.5); other characters pass as written."""
    return "\r" not in value and "\n" not in value and "\0" not in value


# RFC 9110 §8.6: Content-Length = 1*DIGIT. ASCII digits only (str.isdigit alone would take
# '²' or '٣'), no sign, no list; and at most 18 significant ones: a longer length is an attack
# or a mistake, never a body, and int() of a huge digit string costs time of its own. Leading
# zeros are digits of the grammar like any other (as h11 and gunicorn read them), so the cap
# counts only what follows them: 0000000000000000000 is 0, 19 digits of 9 are refused.
_MAX_LENGTH_DIGITS: Final = 18


def parse_content_length(value: str) -> int | None:
    """The length `value` declares, or None when it is not a valid Content-Length."""
    if value.isascii() and value.isdigit():
        significant = value.lstrip("0")
        if len(significant) <= _MAX_LENGTH_DIGITS:
            return int(significant) if significant else 0
    return None


# Default limits of a request head, shared by the parser's `Limits`, the server's
# `ServerConfig`, the CLI and the docs (RFC 9112 §3 recommends supporting request lines of
# at least 8000 octets; 8190 is what nginx and gunicorn allow).
MAX_TARGET: Final = 8190  # request-target longer -> 414
MAX_HEADER_BYTES: Final = 65536  # header section (request line excluded) -> 431
MAX_HEADER_COUNT: Final = 100  # field lines -> 431
MAX_CHUNK_LINE: Final = 4096  # chunk-size line with its extensions -> 400
