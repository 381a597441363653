"""HTTP rules that the framework and the server share, each written once.

This module owns the pieces of RFC 9110/9112 that more than one part of the package applies:
reason phrases and status lines, the token grammar, the Content-Length grammar, and the
default size limits of a request head. It imports nothing from the package (and only the
standard library), so the framework can use it without loading the server and the server
without loading the framework. Parsing and framing themselves belong to
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


# RFC 9110 §5.6.2: token = 1*tchar (methods, field names, transfer codings, cookie names).
TCHAR: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
TOKEN_RE: Final = re.compile(TCHAR + "+")

# RFC 9110 §8.6: Content-Length = 1*DIGIT. ASCII digits only (str.isdigit alone would take
# '²' or '٣'), no sign, no list; and at most 18 of them: a longer length is an attack or a
# mistake, never a body, and int() of a huge digit string costs time of its own.
_MAX_LENGTH_DIGITS: Final = 18


def parse_content_length(value: str) -> int | None:
    """The length `value` declares, or None when it is not a valid Content-Length."""
    if 0 < len(value) <= _MAX_LENGTH_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return None


# Default limits of a request head, shared by the parser's `Limits`, the server's
# `ServerConfig`, the CLI and the README (RFC 9112 §3 recommends supporting request lines of
# at least 8000 octets; 8190 is what nginx and gunicorn allow).
MAX_TARGET: Final = 8190  # request-target longer -> 414
MAX_HEADER_BYTES: Final = 65536  # header section (request line excluded) -> 431
MAX_HEADER_COUNT: Final = 100  # field lines -> 431
MAX_CHUNK_LINE: Final = 4096  # chunk-size line with its extensions -> 400
