"""What the server says by itself: the fields every answer carries, and plain-text errors.

This module owns the `Date` and `Server` fields the server adds to every response, and the
one function that writes an answer no application gave: a protocol error (400, 408, 413,
414, 417, 431, 501, 505) or a 500 for an application that failed before its headers went
out. Such an answer is plain text and closes the connection. Framing is the protocol's.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Final

from .._http import reason_phrase
from .protocol.connection import Connection

SERVER_SOFTWARE: Final = "microwsgi"

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The IMF-fixdate for now (RFC 9110 §5.6.7).

    PERF: formatted at most once a second, not once per answer.
    """
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def error_answer(http: Connection, status: int, message: str) -> tuple[bytes, bytes]:
    """(head, body) of a plain-text `status` answer saying `message`, ending the connection.

    Raises RuntimeError when a response has already started on `http`: then closing the
    connection is all that is left to do.
    """
    body = f"{message}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    head = http.send_response(
        status,
        reason_phrase(status),
        headers,
        close=True,
        length=len(body),
        date=http_date(),
        server=SERVER_SOFTWARE,
    )
    return head, http.send_data(body) + http.send_end()
