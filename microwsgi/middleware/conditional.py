"""``conditional()``: ETags for complete answers, and 304 Not Modified for the clients that have
them already (RFC 9110 §13.1.2 If-None-Match, §13.1.3 If-Modified-Since, §15.4.5 304).

A 200 answer to GET or HEAD with a complete body gets a strong ETag made from its bytes
(werkzeug's ``generate_etag``) unless the handler gave one; a streamed body is left alone, since
its bytes are not known before it is sent, unless the handler gave it an ETag or a
Last-Modified. Whether the client's copy is current is decided by the rule ``send_file`` uses
(``files.not_modified``: If-None-Match with the weak comparison, else If-Modified-Since against
the Last-Modified the handler set). Chaining middleware is the core's business; compressing is
``compress.py``'s, which turns the ETag weak when it changes the bytes.
"""

from __future__ import annotations

from typing import Any

from werkzeug.http import generate_etag

from ..chains import Handler, Middleware
from ..files import not_modified
from ..response import make_response

__all__ = ["conditional"]


def conditional() -> Middleware:
    """Give 200 answers to GET and HEAD an ETag from their body, and answer a client whose
    ``If-None-Match`` matches it (weak comparison; ``*`` matches any) with 304 Not Modified and
    no body; ``If-Modified-Since`` is honoured where the handler set ``Last-Modified`` and the
    request has no ``If-None-Match``. An ETag the handler set is kept. Streamed answers get no
    ETag, but one with an ETag or Last-Modified of its own still gets its 304.
    """

    def conditional_middleware(next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            rv = next(request)
            if request["verb"] not in ("GET", "HEAD"):
                return rv
            response = make_response(rv, request)
            if response.status_code != 200:
                return response
            headers = response.headers
            if "ETag" not in headers and not response.is_streamed:
                response.set_etag(generate_etag(response.get_data()))
            if "ETag" not in headers and "Last-Modified" not in headers:
                return response
            if not_modified(request["environ"], headers.get("ETag"), headers.get("Last-Modified")):
                response.close()  # a stream's generator runs its finally blocks
                response.response = []
                response.status_code = 304  # werkzeug sends no body and no content headers
            return response

        return handler

    return conditional_middleware
