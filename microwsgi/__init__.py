"""microwsgi: the PyMicroHTTP API as a small, fast WSGI framework."""

import importlib.metadata as _metadata

from .app import Server
from .cookies import delete_cookie, set_cookie
from .errors import HTTPError, abort
from .files import send_file
from .response import make_response, redirect
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

try:
    __version__ = _metadata.version("microwsgi")
except _metadata.PackageNotFoundError:  # a source tree used without being installed
    __version__ = "0+unknown"
