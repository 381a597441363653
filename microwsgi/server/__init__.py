"""The built-in HTTP/1.1 development server: `serve(app, host, port)` for any WSGI callable.

Three layers, one module each: `protocol` (sans-IO HTTP/1.1), `wsgi` (PEP 3333 bridge) and
`loop` (sockets, selector, worker pool, timeouts, signals); `reload` restarts on code changes.
"""

from .loop import BindError, DevServer, ServerConfig, serve

__all__ = ["BindError", "DevServer", "ServerConfig", "serve"]
