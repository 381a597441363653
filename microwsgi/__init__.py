"""microwsgi: the PyMicroHTTP API as a small, fast WSGI framework.

Every name the documentation imports is imported from here (``from microwsgi import send_file``);
the modules behind them are the package's own business.
"""

import importlib.metadata as _metadata
from typing import TYPE_CHECKING, Any

from .app import Server
from .cookies import delete_cookie, set_cookie
from .errors import HTTPError, abort
from .files import send_file
from .middleware import (
    basic_auth,
    bearer_auth,
    compress,
    conditional,
    cors,
    csrf,
    rate_limit,
    request_id,
    request_logger,
    sessions,
)
from .response import make_response, redirect
from .routing.groups import Group
from .templates import render

if TYPE_CHECKING:
    from .server import serve

__all__ = [
    "Group",
    "HTTPError",
    "Server",
    "abort",
    "basic_auth",
    "bearer_auth",
    "compress",
    "conditional",
    "cors",
    "csrf",
    "delete_cookie",
    "make_response",
    "rate_limit",
    "redirect",
    "render",
    "request_id",
    "request_logger",
    "send_file",
    "serve",
    "sessions",
    "set_cookie",
]

try:
    __version__ = _metadata.version("microwsgi")
except _metadata.PackageNotFoundError:  # a source tree used without being installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    # `microwsgi.serve` is the development server's: loaded on first use, so that an app
    # served by gunicorn never imports it (PEP 562).
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
