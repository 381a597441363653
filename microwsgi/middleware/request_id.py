"""``request_id(...)``: an ID for each request, in ``request['request_id']`` and on the answer.

The ID is the client's or proxy's own when it is trusted and a plain token (it ends up in logs
and in a response header), else a new one. ``request_logger`` prints it when present.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from ..chains import Handler, Middleware
from ..request import request_header
from ..response import prepare

__all__ = ["request_id"]

# An incoming ID ends up in logs and in a response header: accept only short, plain tokens.
_REQUEST_ID = re.compile(r"[\w.:@/+=-]{1,200}", re.ASCII)


def _new_id() -> str:
    return uuid.uuid4().hex


def request_id(
    header: str = "X-Request-ID",
    generator: Callable[[], str] = _new_id,
    trust_incoming: bool = True,
) -> Middleware:
    """Give each request an ID: ``request['request_id']`` and the ``header`` on the answer.

    The client's (or proxy's) ``header`` is kept when ``trust_incoming`` and it is a plain
    token of at most 200 characters; otherwise ``generator()`` makes one (a UUID4 in hex).
    """

    def request_id_middleware(next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            incoming = request_header(request, header) if trust_incoming else None
            if incoming is not None and _REQUEST_ID.fullmatch(incoming):
                rid = incoming
            else:
                rid = generator()
            request["request_id"] = rid
            response = prepare(next(request), request)
            response.headers[header] = rid
            return response

        return handler

    return request_id_middleware
