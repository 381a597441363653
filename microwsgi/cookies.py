"""Setting and deleting cookies: ``Set-Cookie`` header pairs a handler returns with its answer.

>>> return "ok", 200, [set_cookie("theme", "dark"), set_cookie("sid", token, httponly=True)]

Each helper returns one ``('Set-Cookie', value)`` pair, so several fit in the header list of a
return tuple (a dict could hold only one). The value is written by werkzeug's ``dump_cookie``
(quoting, RFC 6265 attributes); this module adds the checks that make a mistake fail here
rather than be silently dropped by browsers. Reading cookies is ``request['cookies']``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from werkzeug.http import dump_cookie

from ._http import TOKEN_RE

__all__ = ["delete_cookie", "set_cookie"]

SameSite = Literal["Strict", "Lax", "None", "strict", "lax", "none"]


def set_cookie(
    name: str,
    value: str = "",
    *,
    max_age: int | timedelta | None = None,
    expires: datetime | int | float | str | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: SameSite | None = None,
    partitioned: bool = False,
) -> tuple[str, str]:
    """A ``('Set-Cookie', ...)`` pair setting cookie ``name`` to ``value``.

    ``max_age`` (seconds or a timedelta) also writes the matching ``Expires`` for old clients;
    ``expires`` alone is a datetime, a Unix timestamp or an HTTP date. Without either it is a
    session cookie. ``samesite`` is 'Strict', 'Lax' or 'None'; 'None' requires
    ``secure=True``, as browsers drop the cookie otherwise; so does ``partitioned``.
    Raises ``ValueError`` for a name that is not an HTTP token or a bad ``samesite``.
    """
    if not TOKEN_RE.fullmatch(name):
        raise ValueError(f"cookie name must be an HTTP token (RFC 6265), got {name!r}")
    if samesite is not None:
        samesite = samesite.title()  # type: ignore[assignment]
        if samesite not in ("Strict", "Lax", "None"):
            raise ValueError(f"samesite must be 'Strict', 'Lax' or 'None', got {samesite!r}")
        if samesite == "None" and not secure:
            raise ValueError("samesite='None' requires secure=True (browsers reject it otherwise)")
    if partitioned and not secure:
        raise ValueError("partitioned=True requires secure=True")
    header = dump_cookie(
        name,
        value,
        max_age=max_age,
        expires=expires,
        path=path,
        domain=domain,
        secure=secure,
        httponly=httponly,
        samesite=samesite,
        partitioned=partitioned,
    )
    return "Set-Cookie", header


def delete_cookie(
    name: str, path: str | None = "/", domain: str | None = None, **attributes: Any
) -> tuple[str, str]:
    """A ``('Set-Cookie', ...)`` pair telling the client to drop cookie ``name`` now.

    A browser only replaces the cookie with the same name, ``path`` and ``domain``, so pass
    the ones it was set with (and ``secure`` for ``__Secure-``/``__Host-`` names); other
    ``attributes`` (``secure``, ``httponly``, ``samesite``, ``partitioned``) are set_cookie's.
    """
    return set_cookie(name, "", max_age=0, expires=0, path=path, domain=domain, **attributes)
