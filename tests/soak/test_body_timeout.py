"""A request whose body stops arriving gets 408, as a request whose head stops arriving does.

The live fuzz's rule is "never close without an answer where a 4xx was due": a request head
that stalls past `header_timeout` gets 408 and a close (RFC 9110 §15.5.9), and so does a body
that stalls past `io_timeout` while the application reads it. Closing without a word would
look like a crash to the client (or a proxy in front), which would not be told that it may
repeat the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from soak_support import dev_server, until_closed


def _reads_body(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_a_body_that_stops_arriving_gets_408_and_a_close() -> None:
    with dev_server(_reads_body, io_timeout=0.5) as server:
        answer = until_closed(
            server.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"
        )
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"\r\nConnection: close\r\n" in answer
