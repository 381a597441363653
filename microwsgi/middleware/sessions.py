"""``sessions(secret, ...)``: ``request['session']``, a dict kept in a signed cookie.

The whole session travels in the cookie (no server-side store), so any process on any host
that has the secret reads it. The cookie is JSON, signed and timestamped by itsdangerous'
`URLSafeTimedSerializer` (HMAC-SHA256, zlib-compressed when that is shorter): the client can
read it but cannot change it, and one older than ``max_age`` reads as an empty session, as does
one that is tampered with, truncated, not JSON, or signed with a key not in the list.

`Set-Cookie` is sent only when the request changed the session (the `Session` dict notices its
own mutations), and a session the request emptied is deleted (``Max-Age=0``). An answer whose
route read or changed the session says ``Vary: Cookie`` (the dict notes its reads too, and a
template is rendered here so that its reads count); one whose route never looked at it does
not, and stays cacheable for everyone. A value that is not JSON, or a cookie past
`MAX_COOKIE_SIZE`, is the route's bug: an exception naming the key or the size, which the core
logs with the route and answers with 500. Writing the cookie's attributes is werkzeug's
``dump_cookie``; checking them, ``cookies.set_cookie``'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.datastructures import CallbackDict
from werkzeug.http import dump_cookie

from ..chains import Handler
from ..cookies import SameSite, set_cookie
from ..reporting import report
from ..response import Deferred, add_vary, prepare

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

__all__ = ["sessions"]

# Browsers keep a cookie of at most 4096 bytes (RFC 6265 §6.1 asks for at least that much);
# werkzeug warns past 4093 for the whole Set-Cookie value, attributes included, and so do we:
# counting the attributes too leaves room for any browser's way of counting.
MAX_COOKIE_SIZE = 4093
# What the docs ask for (secrets.token_hex(32)); a shorter secret is logged, never refused.
SHORT_SECRET = 32

Secret = str | bytes
SECRET_KINDS = (str, bytes)


class Session(CallbackDict[str, Any]):
    """``request['session']``: a dict that notes whether the request read or changed it.

    Any mutation of the dict itself sets `modified` (``clear()`` included); a change inside a
    value (``session['cart'].append(...)``) cannot be seen, so set ``modified = True`` after one.
    Any read of it (a key, ``in``, ``len``, ``bool``, iterating, ``keys``/``values``/``items``,
    ``copy``, ``dict(...)``, comparing, printing) or change sets `accessed`: the answer may then
    depend on the cookie, and says so with ``Vary: Cookie``.
    """

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        super().__init__(initial, on_update=_note_change)
        self.modified = False
        self.accessed = False

    # The reads, each noted: the dict's own C methods read its storage directly, so each one a
    # page could depend on is overridden (Flask's SecureCookieSession notes fewer: get,
    # __getitem__, setdefault; an ``if session:`` or a loop would go unseen there).
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return super().__iter__()

    def __reversed__(self) -> Iterator[str]:
        self.accessed = True
        return super().__reversed__()

    def __len__(self) -> int:
        self.accessed = True
        return super().__len__()

    def keys(self) -> dict_keys[str, Any]:
        self.accessed = True
        return super().keys()

    def values(self) -> dict_values[str, Any]:
        self.accessed = True
        return super().values()

    def items(self) -> dict_items[str, Any]:
        self.accessed = True
        return super().items()

    def copy(self) -> dict[str, Any]:
        self.accessed = True
        return super().copy()

    def __eq__(self, other: object) -> bool:
        self.accessed = True
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self.accessed = True
        return super().__ne__(other)

    __hash__ = None  # type: ignore[assignment]  # a dict's: defining __eq__ must not undo it

    def __or__(self, other: Any) -> Any:
        self.accessed = True
        return super().__or__(other)

    def __repr__(self) -> str:
        self.accessed = True
        return super().__repr__()


def _note_change(session: Session) -> None:
    session.modified = True
    session.accessed = True


class _JSON:
    """The cookie's serialiser: strict JSON (no NaN), compact, UTF-8 kept as it is."""

    @staticmethod
    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @staticmethod
    def loads(text: str | bytes) -> Any:
        return json.loads(text)


def _secrets(secret: Secret | Sequence[Secret]) -> list[Secret]:
    """The secrets newest first; ValueError for none or an empty one."""
    if isinstance(secret, SECRET_KINDS):
        keys: list[Any] = [secret]
    elif isinstance(secret, list | tuple):
        keys = list(secret)
    else:
        raise TypeError(f"sessions() secret must be str, bytes, a list or a tuple, got {secret!r}")
    if not keys:
        raise ValueError("sessions() needs a secret: an empty list signs nothing")
    for key in keys:
        if not isinstance(key, SECRET_KINDS):
            raise TypeError(f"sessions() secret must be str or bytes, got {type(key).__name__}")
        if not key:
            raise ValueError("sessions() secret must not be empty")
    newest = keys[0]
    length = len(newest.encode() if isinstance(newest, str) else newest)
    if length < SHORT_SECRET:
        report(
            logging.WARNING,
            "the sessions() secret is %d bytes long: use at least %d random bytes "
            "(python -c 'import secrets; print(secrets.token_hex(32))')",
            length,
            SHORT_SECRET,
        )
    return keys


def _seconds(max_age: int | float | timedelta) -> int:
    seconds = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValueError(
            f"sessions() max_age must be a positive number of seconds, got {max_age!r}"
        )
    return int(seconds)


def _unstorable_key(session: Mapping[str, Any]) -> str:
    """The first key whose value JSON cannot hold (one exists: the whole failed)."""
    for key, value in session.items():
        try:
            _JSON.dumps({key: value})
        except (TypeError, ValueError):
            return repr(key)
    return "(a key)"  # a failure JSON gives only for the whole, such as a non-str key


class SessionMiddleware:
    """What ``sessions(...)`` returns: the middleware holding one cookie's settings.

    `provides` is what a middleware that needs a session asks for with `runs_inside`
    (``checks.check_order``).
    """

    provides = "sessions"

    def __init__(
        self,
        secret: Secret | Sequence[Secret],
        cookie: str,
        max_age: int,
        secure: bool | None,
        attributes: dict[str, Any],
    ) -> None:
        # itsdangerous signs with the last key and verifies with each: oldest first for it.
        keys = [k.encode() if isinstance(k, str) else k for k in reversed(_secrets(secret))]
        self.serializer = URLSafeTimedSerializer(
            keys,
            salt="microwsgi.session",
            serializer=_JSON,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self.cookie = cookie
        self.max_age = max_age
        self.secure = secure
        self.attributes = attributes  # path, domain, httponly, samesite: as given

    def load(self, request: dict[str, Any]) -> Session:
        """The session the request's cookie holds; empty for any cookie that does not verify."""
        cookies = request["cookies"]
        # PERF: werkzeug's MultiDict.get raises and catches an HTTPException for a missing key;
        # `in` raises nothing: 9,500 of the 138,000 instructions (callgrind) of a request that
        # reads a session and has no cookie yet.
        value = cookies[self.cookie] if self.cookie in cookies else None  # noqa: SIM401
        if not value:
            return Session()
        try:
            data = self.serializer.loads(value, max_age=self.max_age)
        except BadData:  # tampered, truncated, expired, not JSON, or an unknown key
            return Session()
        return Session(data) if isinstance(data, dict) else Session()

    def set_cookie(self, request: dict[str, Any], session: Session) -> str:
        """The ``Set-Cookie`` value that stores `session`, or deletes it once emptied."""
        secure = request["scheme"] == "https" if self.secure is None else self.secure
        if session:
            try:
                value = self.serializer.dumps(dict(session))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"session key {_unstorable_key(session)} cannot be stored in the cookie, "
                    f"which holds JSON values only: {exc}"
                ) from exc
            max_age: int = self.max_age
        else:
            value, max_age = "", 0
        header = dump_cookie(
            self.cookie,
            value,
            max_age=max_age,
            secure=secure,
            max_size=0,  # checked below, as an error rather than werkzeug's warning
            **self.attributes,
        )
        if len(header) > MAX_COOKIE_SIZE:
            raise ValueError(
                f"the session cookie would be {len(header)} bytes, over the {MAX_COOKIE_SIZE} "
                f"browsers keep (keys: {', '.join(map(repr, session))}): store less in it"
            )
        return header

    def __call__(self, next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            session = request["session"] = self.load(request)
            rv = next(request)
            if not session.accessed and not _deferred(rv):
                return rv  # the answer does not depend on the cookie: cacheable for anyone
            response = prepare(rv, request)  # a template renders now, maybe reading it
            if not session.accessed:
                return response
            # One user's page must not be served to another from a shared cache.
            add_vary(response.headers, "Cookie")
            if session.modified and (session or self.cookie in request["cookies"]):
                # Changed; but an emptied session with no cookie to delete has nothing to send.
                response.headers.add("Set-Cookie", self.set_cookie(request, session))
            return response

        return handler


def _deferred(rv: Any) -> bool:
    """Whether the answer `rv` is still to be made (a ``render(...)``, alone or in a tuple)."""
    body = rv[0] if type(rv) is tuple and rv else rv
    return isinstance(body, Deferred)


def sessions(
    secret: Secret | Sequence[Secret],
    *,
    cookie: str = "session",
    max_age: int | float | timedelta = 1209600,
    path: str = "/",
    domain: str | None = None,
    secure: bool | None = None,
    httponly: bool = True,
    samesite: SameSite | None = "Lax",
) -> SessionMiddleware:
    """Middleware giving the routes it wraps ``request['session']``, kept in a signed cookie.

    `secret` is a str or bytes, or a list of them newest first: the first signs, each one
    verifies, so a secret can be replaced without signing everyone out. `max_age` (seconds or a
    `timedelta`, 14 days by default) is how long a session lives after its last change.
    `secure=None` marks the cookie ``Secure`` when the request came over https (as
    ``trusted_proxies`` reports it). ValueError for an empty secret, a `max_age` that is not
    positive, and the cookie settings `set_cookie` refuses (a name that is not a token,
    ``samesite='None'`` without ``secure=True``).
    """
    seconds = _seconds(max_age)
    attributes: dict[str, Any] = {
        "path": path,
        "domain": domain,
        "httponly": httponly,
        "samesite": samesite,
    }
    set_cookie(cookie, max_age=seconds, secure=bool(secure), **attributes)  # its checks, now
    return SessionMiddleware(secret, cookie, seconds, secure, attributes)
