"""``basic_auth(check)`` and ``bearer_auth(verify)``: a route's caller, from ``Authorization``.

Each reads the request's ``Authorization`` header with werkzeug's ``Authorization.from_header``,
asks the app's function whether the credentials name a user, and either puts what it returned
in ``request['user']`` or refuses with 401 and the ``WWW-Authenticate`` challenge of its scheme
(RFC 7617 for Basic, RFC 6750 for Bearer). A header that is missing, of another scheme or
malformed is a 401 too, never a 500: it is the client's to fix. Who the users are, and how
passwords are stored, is the app's business; answering the refusal, the core's.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from werkzeug.datastructures import Authorization
from werkzeug.http import quote_header_value

from ..chains import Handler
from ..errors import HTTPError
from ..request import request_header

__all__ = ["basic_auth", "bearer_auth"]

# RFC 7617 §2: neither the user-id nor the password may contain a control character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _quoted(realm: str, who: str) -> str:
    """The realm as a quoted-string (RFC 7235 §2.2: senders always quote it)."""
    if not isinstance(realm, str) or not realm.isascii() or not realm.isprintable():
        raise ValueError(f"{who} realm must be printable ASCII text, got {realm!r}")
    return quote_header_value(realm, allow_token=False)


def _check_callable(function: object, who: str) -> None:
    if not callable(function):
        raise TypeError(f"{who} needs a function that returns the user or a falsy value")


class BasicAuth:
    """What ``basic_auth(...)`` returns: HTTP Basic authentication (RFC 7617) for its routes."""

    def __init__(self, check: Callable[[str, str], Any], realm: str) -> None:
        self.check = check
        # RFC 7617 §2.1: charset="UTF-8" tells clients to encode the user name and password so.
        self.challenge = [("WWW-Authenticate", f'Basic realm={realm}, charset="UTF-8"')]

    def refuse(self, message: str) -> HTTPError:
        return HTTPError(401, message, self.challenge)

    def credentials(self, request: dict[str, Any]) -> tuple[str, str]:
        """The user name and password the request sends; a 401 for none or malformed ones."""
        header = request_header(request, "Authorization")
        if not header:
            raise self.refuse("authentication required: send a user name and password (Basic)")
        auth = Authorization.from_header(header)
        if auth is not None and auth.type != "basic":
            raise self.refuse(f"Authorization uses the {auth.type!r} scheme; Basic is needed")
        # werkzeug returns None for credentials that are not base64 or not UTF-8, and reads
        # user-pass without its colon as an empty password: RFC 7617 §2 requires the colon.
        if auth is None or (not auth.password and not _has_colon(header)):
            raise self.refuse("malformed Basic credentials: base64 of UTF-8 'user:password'")
        username, password = auth.username or "", auth.password or ""
        if _CONTROL.search(username) or _CONTROL.search(password):
            raise self.refuse("malformed Basic credentials: control characters in them")
        return username, password

    def __call__(self, next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            user = self.check(*self.credentials(request))
            if not user:
                raise self.refuse("wrong user name or password")
            request["user"] = user
            return next(request)

        return handler


def _has_colon(header: str) -> bool:
    """Whether Basic credentials hold the user-pass colon (werkzeug has decoded the same text,
    so it is valid base64)."""
    return b":" in base64.b64decode(header.partition(" ")[2].strip(" \t"), validate=True)


class BearerAuth:
    """What ``bearer_auth(...)`` returns: Bearer tokens (RFC 6750) for its routes."""

    def __init__(self, verify: Callable[[str], Any], realm: str | None) -> None:
        self.verify = verify
        self.realm = realm

    def refuse(self, message: str, *, token_sent: bool) -> HTTPError:
        # RFC 6750 §3: no error code for a request without a token; invalid_token for one
        # sent and refused (a malformed token included, so every refusal is a 401).
        params = [f"realm={self.realm}"] if self.realm is not None else []
        if token_sent:
            params.append('error="invalid_token"')
        challenge = "Bearer " + ", ".join(params) if params else "Bearer"
        return HTTPError(401, message, [("WWW-Authenticate", challenge)])

    def token(self, request: dict[str, Any]) -> str:
        """The token the request sends; a 401 for none or a malformed one."""
        auth = Authorization.from_header(request_header(request, "Authorization"))
        if auth is None or auth.type != "bearer" or auth.token == "":
            raise self.refuse("authentication required: send a Bearer token", token_sent=False)
        if auth.token is None or not _B64TOKEN.fullmatch(auth.token):
            raise self.refuse("malformed Bearer token", token_sent=True)
        return auth.token

    def __call__(self, next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            user = self.verify(self.token(request))
            if not user:
                raise self.refuse("invalid or expired token", token_sent=True)
            request["user"] = user
            return next(request)

        return handler


def basic_auth(check: Callable[[str, str], Any], *, realm: str = "microwsgi") -> BasicAuth:
    """Middleware admitting requests whose HTTP Basic credentials `check` accepts.

    ``check(username, password)`` returns the user (any truthy value, then in
    ``request['user']``) or a falsy value. Missing, malformed or refused credentials get 401
    with ``WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"``. User names and
    passwords are UTF-8 (RFC 7617). TypeError for a `check` that is not callable, ValueError
    for a realm that is not printable ASCII.
    """
    _check_callable(check, "basic_auth()")
    return BasicAuth(check, _quoted(realm, "basic_auth()"))


def bearer_auth(verify: Callable[[str], Any], *, realm: str | None = None) -> BearerAuth:
    """Middleware admitting requests whose Bearer token `verify` accepts.

    ``verify(token)`` returns the user (any truthy value, then in ``request['user']``) or a
    falsy value. A missing token gets 401 with ``WWW-Authenticate: Bearer`` (plus
    ``realm="<realm>"`` when given); a malformed or refused one adds ``error="invalid_token"``
    (RFC 6750 §3.1). TypeError for a `verify` that is not callable, ValueError for a realm
    that is not printable ASCII.
    """
    _check_callable(verify, "bearer_auth()")
    return BearerAuth(verify, None if realm is None else _quoted(realm, "bearer_auth()"))
