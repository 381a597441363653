"""Writing a response head: the status line and an application's fields, checked and encoded.

This module owns turning a status, a reason and the fields an application gives into the
bytes of a head, and refusing what would split or corrupt it on the wire: a name that is not a
token, CR, LF or NUL in the reason or a value, anything not latin-1, a bad or conflicting
Content-Length, a Transfer-Encoding (the server frames the body). It also says what the head
declares that the framing needs: a Content-Length, and whether its Connection field asks to
close. Which framing the body gets, and keep-alive, are ``connection.py``'s; the shared
grammar of names, values and lengths is ``microwsgi/_http.py``'s.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from ..._http import STATUS_CODES, parse_content_length, valid_field_name, valid_field_value
from .grammar import tokens
from .memo import remember

# What a response field is to the framing: any other field (0, the usual one) needs no second
# look; these do.
_LENGTH_FIELD: Final = 1
_CONNECTION_FIELD: Final = 2
_DATE_FIELD: Final = 3
_SERVER_FIELD: Final = 4
_SPECIAL_FIELDS: Final = {
    "content-length": _LENGTH_FIELD,
    "connection": _CONNECTION_FIELD,
    "date": _DATE_FIELD,
    "server": _SERVER_FIELD,
}

FieldLine: TypeAlias = tuple[int, bytes, int]  # kind, the line on the wire, Content-Length's value

# PERF: response fields as applications give them -> their kind and their line, encoded; and
# statuses -> their status line. Applications answer with the same few fields and statuses
# again and again, so a field costs a dict lookup instead of ~1,500 instructions of checks,
# formatting and encoding (a whole head, ~13,000 -> ~4,000). Short ones only: a full memo holds
# well under 1 MiB.
_FIELD_LINES: Final[dict[tuple[str, str], FieldLine]] = {}
_MAX_FIELD_LINES: Final = 1024
_STATUS_LINES: Final[dict[tuple[int, str], bytes]] = {}
_MAX_STATUS_LINES: Final = 256
_DATE_SERVER_LINES: Final[dict[tuple[str | None, str | None], bytes]] = {}  # a new Date a second
_MAX_DATE_SERVER_LINES: Final = 64
_MEMO_FIELD: Final = 256


def status_line(status: int, reason: str) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its CRLF, checked (remembered); ValueError for a final
    status out of range, or a reason that would split the head or is not latin-1."""
    # A 1xx is interim (RFC 9110 §15.2): a final answer must follow it, so it is never one.
    if status not in STATUS_CODES or status < 200:
        raise ValueError(f"invalid final status {status}: 200..599 (a 1xx is send_informational's)")
    if not reason.isprintable() and not valid_field_value(reason):
        raise ValueError(f"CR, LF or NUL in the reason phrase {reason!r}")
    line = _latin1(f"HTTP/1.1 {status} {reason}\r\n")
    if len(reason) > _MEMO_FIELD:
        return line
    return remember(_STATUS_LINES, (status, reason), line, _MAX_STATUS_LINES)


def field_line(name: str, value: str) -> FieldLine:
    """The kind of the response field `name: value`, its line and, for Content-Length, the
    length it declares (remembered); ValueError for a field that may not be sent as given."""
    if not valid_field_name(name):
        raise ValueError(f"header name {name!r} is not a token")
    # PERF: a printable value has no CR, LF or NUL; the rule's own test is for the rest (tabs).
    if not value.isprintable() and not valid_field_value(value):
        raise ValueError(f"CR, LF or NUL in the value of {name!r}")
    lowered = name.lower()
    if lowered == "transfer-encoding":
        raise ValueError("Transfer-Encoding is hop-by-hop; the server frames the body")
    kind = _SPECIAL_FIELDS.get(lowered, 0)
    length = 0
    if kind == _LENGTH_FIELD:
        value = value.strip(" \t")
        parsed = parse_content_length(value)
        if parsed is None:
            raise ValueError(f"invalid or conflicting Content-Length {value!r}")
        length = parsed
    found = kind, _latin1(f"{name}: {value}\r\n"), length
    if len(name) + len(value) > _MEMO_FIELD:
        return found
    return remember(_FIELD_LINES, (name, value), found, _MAX_FIELD_LINES)


def head_lines(
    status: int, reason: str, headers: list[tuple[str, str]], date: str | None, server: str | None
) -> tuple[list[bytes], int | None, bool]:
    """The status line and field lines of a response head (each ending in CRLF, the blank line
    not yet), the Content-Length it declares, and whether its Connection field asks to close.

    `date` and `server` are added as Date and Server unless `headers` has them. Connection is
    hop-by-hop: the framing writes its own. RFC 9110 §8.6: no Content-Length on a 204.
    """
    known = _FIELD_LINES
    lines = [_STATUS_LINES.get((status, reason)) or status_line(status, reason)]
    declared: int | None = None
    close = False
    for name, value in headers:
        kind, line, length = known.get((name, value)) or field_line(name, value)
        if kind:  # PERF: one test for the usual field, which needs no second look
            if kind == _LENGTH_FIELD:
                if declared is not None and declared != length:
                    raise ValueError(f"invalid or conflicting Content-Length {value!r}")
                declared = length
                if status == 204:
                    continue
            elif kind == _CONNECTION_FIELD:
                close = close or "close" in tokens(value)
                continue
            elif kind == _DATE_FIELD:
                date = None
            else:
                server = None
        lines.append(line)
    lines.append(_DATE_SERVER_LINES.get((date, server)) or _date_server_lines(date, server))
    return lines, declared, close


def _date_server_lines(date: str | None, server: str | None) -> bytes:
    """The Date and Server lines (those not None), checked as any field (remembered)."""
    found = b"".join(
        field_line(name, value)[1]
        for name, value in (("Date", date), ("Server", server))
        if value is not None
    )
    return remember(_DATE_SERVER_LINES, (date, server), found, _MAX_DATE_SERVER_LINES)


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"response head is not latin-1: {exc}") from None
