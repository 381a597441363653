"""The WSGI types (PEP 3333), named once for the framework and the engine alike.

`WSGIEnvironment` is the environ dict, `StartResponse` the ``start_response`` callable (status,
headers and an optional ``exc_info``, returning the ``write`` callable), `WSGIApp` an
application. Like ``_http.py`` it imports nothing from the package, so that either side can
use it without loading the other; what the types carry is PEP 3333's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__: list[str] = []

WSGIEnvironment = dict[str, Any]
# The write callable's result is unused (PEP 3333); `object` accepts any server's.
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]
