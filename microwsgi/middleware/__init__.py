"""Ready-made middleware in PyMicroHTTP's shape, one module each.

Each factory returns a middleware ``mw(next) -> handler``, usable per route
(``@server.register('GET /x', cors())``), in a list, or with ``@server.before_all()``. A
middleware adds its headers to the handler's return value made ready by ``response.prepare``
(``next(request)`` never raises: errors come back as return values, so they get the headers
too); those that rewrite the body (compression, conditional answers) take a werkzeug
``Response`` from ``make_response``. Chaining middleware is ``chains.py``'s business.
"""

from .auth import basic_auth, bearer_auth
from .compress import compress
from .conditional import conditional
from .cors import cors
from .csrf import csrf
from .rate_limit import rate_limit
from .request_id import request_id
from .request_logger import request_logger
from .sessions import sessions

__all__ = [
    "basic_auth",
    "bearer_auth",
    "compress",
    "conditional",
    "cors",
    "csrf",
    "rate_limit",
    "request_id",
    "request_logger",
    "sessions",
]
