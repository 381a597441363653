"""microwsgi: the PyMicroHTTP API as a small, fast WSGI framework."""

from .app import Server
from .errors import HTTPError, abort
from .response import make_response

__all__ = ["HTTPError", "Server", "abort", "make_response", "serve"]


def __getattr__(name: str) -> object:
    # The development server is imported on first use: WSGI deployments never load it.
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'microwsgi' has no attribute {name!r}")
