"""The built-in HTTP/1.1 server: `serve(app, host, port)` for any WSGI callable.

The embedding API: `serve` and `DevServer` (bind an address and serve, from a script, the CLI
or a test), `Engine` (serve on sockets you already listen on, with your own `Hooks`: what a
gunicorn worker needs), `ServerConfig` (every option and its default) and `BindError`.

Inside, in layers: ``protocol/`` is sans-IO HTTP/1.1; ``wsgi.py`` and ``exchange.py`` the
PEP 3333 bridge; ``responder.py`` serves a connection, on threads run by ``mux.py`` (Linux)
or ``pool.py``; ``loop.py`` accepts, watches idle connections and stops gracefully;
``devserver.py`` binds and handles signals; ``sockets.py``, ``answers.py``, ``logs.py``,
``config.py`` and ``reload.py`` (``--reload``) serve them all.
"""

from .config import Hooks, ServerConfig
from .devserver import DevServer, serve
from .loop import Engine
from .sockets import BindError

__all__ = ["BindError", "DevServer", "Engine", "Hooks", "ServerConfig", "serve"]
