"""microwsgi: the PyMicroHTTP API as a small, fast WSGI framework."""

from .app import Server
from .cookies import delete_cookie, set_cookie
from .errors import HTTPError, abort
from .files import send_file
from .groups import Group
from .response import make_response, redirect
from .server import serve

__all__ = [
    "Group",
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
