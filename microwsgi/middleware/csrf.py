"""``csrf(...)``: refuse a state-changing request that does not carry the session's CSRF token.

A cross-site request forgery is a page on another site making the browser send a form (with
the user's cookies) to this one. The defence is a secret only this site's pages know: a random
token kept in the session (``request['csrf_token']``, put in every form), which each POST,
PUT, PATCH or DELETE must send back, in a header or a form field. Another site can make the
browser send a request but cannot read the token out of this site's pages.

The token lives in the session under `TOKEN_KEY`, made the first time a request passes with
none, so ``csrf()`` must run inside ``sessions(...)``: a list that shows the wrong order is
refused at registration (``checks.check_order``), any other at the request. Answering the
refusal is the core's business: a 403 in the JSON error shape.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from .._http import valid_field_name
from ..chains import Handler
from ..errors import HTTPError
from ..request import request_header

__all__ = ["csrf"]

# The session key that holds the token: a name of the framework's own, beside the app's keys.
TOKEN_KEY = "_csrf_token"
# RFC 9110 §9.2.1: the safe methods, which must not change state and so need no token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The bodies a browser's form can send, and so the ones a field can carry the token in.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
TOKEN_BYTES = 32  # 256 random bits, URL-safe base64: 43 characters


def _session_token(request: dict[str, Any]) -> str:
    """The session's token, made and stored in it if it has none."""
    session = request.get("session")
    if session is None:
        raise RuntimeError(
            "csrf() runs outside sessions(...), so there is no session to keep its token in: "
            "put sessions(...) before csrf() (in before_all, or earlier in the route's or "
            "group's middleware list)"
        )
    token = session.get(TOKEN_KEY)
    if not isinstance(token, str) or not token:
        token = session[TOKEN_KEY] = secrets.token_urlsafe(TOKEN_BYTES)
    return token


class CsrfMiddleware:
    """What ``csrf(...)`` returns: the header and form field the token may come in.

    ``runs_inside`` tells the registration checks that it needs ``sessions(...)`` around it.
    """

    runs_inside = "sessions"

    def __init__(self, header: str, field: str) -> None:
        self.header = header
        self.field = field

    def sent_token(self, request: dict[str, Any]) -> str | None:
        """The token the request carries: the header's, else the form field's."""
        sent = request_header(request, self.header)
        if sent is None:
            mimetype = request["content_type"].partition(";")[0].strip().lower()
            if mimetype in FORM_TYPES:
                sent = request["form"].get(self.field)
        return sent

    def check(self, request: dict[str, Any], token: str) -> None:
        """Refuse (403) a request whose token is missing or is not the session's."""
        sent = self.sent_token(request)
        where = f"send the session's token in the {self.header} header or the {self.field} field"
        if not sent:
            raise HTTPError(403, f"CSRF token missing: {where}")
        # Compared in constant time, as bytes: compare_digest refuses non-ASCII str.
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise HTTPError(403, f"CSRF token wrong: it is not this session's; {where}")

    def __call__(self, next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            token = request["csrf_token"] = _session_token(request)
            if request["environ"]["REQUEST_METHOD"] not in SAFE_METHODS:
                self.check(request, token)
            return next(request)

        return handler


def csrf(*, header: str = "X-CSRF-Token", field: str = "csrf_token") -> CsrfMiddleware:
    """Middleware requiring the session's CSRF token on every request of an unsafe method.

    Runs inside ``sessions(...)``. ``request['csrf_token']`` is the token to put in forms (as
    the `field` input) or in the `header` of scripted requests. GET, HEAD, OPTIONS and TRACE
    pass; any other method without the token, or with another, gets 403. ValueError for a
    `header` that is not a field name or an empty `field`.
    """
    if not isinstance(header, str) or not valid_field_name(header):
        raise ValueError(f"csrf() header must be an HTTP field name, got {header!r}")
    if not isinstance(field, str) or not field:
        raise ValueError(f"csrf() field must be a form field name, got {field!r}")
    return CsrfMiddleware(header, field)
