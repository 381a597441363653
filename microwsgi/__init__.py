"""microwsgi: the PyMicroHTTP API as a small, fast WSGI framework."""

from typing import TYPE_CHECKING, Any

from .app import Server
from .cookies import delete_cookie, set_cookie
from .errors import HTTPError, abort
from .files import send_file
from .response import make_response, redirect

if TYPE_CHECKING:
    from .server import serve

__all__ = [
    "HTTPError",
    "Server",
    "abort",
    "delete_cookie",
    "make_response",
    "redirect",
    "send_file",
    "serve",
    "set_cookie",
]


def __getattr__(name: str) -> Any:
    # `microwsgi.serve` is the development server's: loaded on first use, so that an app
    # served by gunicorn never imports it (PEP 562).
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
