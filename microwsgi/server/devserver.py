"""The development server: `serve()` and `DevServer`, the engine bound to an address.

This module owns what a person running a server from a script or the CLI needs on top of the
engine: binding `host:port` (or taking a socket), running the loop in the calling thread or a
background one, the listen message and readiness callback, and SIGINT/SIGTERM (graceful; a
second signal stops waiting for in-flight requests). Serving itself is ``loop.py``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from .._wsgi import WSGIApp
from .config import DEFAULT_HOST, DEFAULT_PORT, Hooks, ServerConfig
from .logs import configure_logging
from .loop import Engine
from .sockets import bind, format_address

log = logging.getLogger("microwsgi.server")


class DevServer:
    """The development server. Binds in the constructor, so `port` is known at once.

    >>> server = DevServer(app, "127.0.0.1", 0).start()   # background thread
    >>> server.port
    >>> server.shutdown()

    `serve_forever()` runs the loop in the calling thread; with `handle_signals=True` (main
    thread only) SIGINT and SIGTERM stop it gracefully. `options` are `ServerConfig`'s;
    `hooks` are an embedder's (see `Hooks`).
    """

    def __init__(
        self,
        app: WSGIApp,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        sock: socket.socket | None = None,
        hooks: Hooks | None = None,
        **options: Any,
    ) -> None:
        self.config = config = ServerConfig.from_options(**options)
        self.host = host
        listener = sock if sock is not None else bind(host, port, config.backlog)
        self.port: int = listener.getsockname()[1]
        self.engine = Engine(app, [listener], config, hooks, server_name=host or "0.0.0.0")
        self._running = False

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        return f"http://{format_address(self.host or '0.0.0.0', self.port)}"

    def start(self) -> DevServer:
        """Serve from a background thread (tests, embedding); returns self."""
        self._running = True
        threading.Thread(target=self.serve_forever, name="microwsgi-loop", daemon=True).start()
        return self

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop gracefully and wait (bounded) for the loop to finish; idempotent."""
        self.stop()
        if not self._running:
            self.engine.release()  # never served: only the sockets to close
        else:
            self.engine.wait(self.config.shutdown_timeout + 5 if timeout is None else timeout)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def stop(self) -> None:
        """Ask the loop to stop gracefully; returns at once (safe from any thread)."""
        self.engine.stop()

    def serve_forever(
        self, *, handle_signals: bool = False, on_ready: Callable[[], object] | None = None
    ) -> None:
        """Run until `shutdown()` (or SIGINT/SIGTERM with `handle_signals`); `on_ready()` is
        called once the signal handlers are in place, just before the loop starts."""
        self._running = True
        with self._signals(handle_signals):
            if on_ready is not None:
                on_ready()
            self.engine.run()

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = 0

        def handler(signum: int, frame: FrameType | None) -> None:
            nonlocal stops
            stops += 1
            log.info("%s: shutting down", signal.Signals(signum).name)
            # A second Ctrl+C: stop waiting for in-flight requests.
            self.engine.stop(force=stops > 1)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def serve(
    app: WSGIApp,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    listen_msg: bool = False,
    ready: Callable[[tuple[str, int]], object] | threading.Event | None = None,
    sock: socket.socket | None = None,
    **options: Any,
) -> None:
    """Serve the WSGI callable `app` on `host:port` until SIGINT/SIGTERM, then return.

    `options` are `ServerConfig`'s fields, defaults included (docs/devserver.md's table lists them).
    `port=0` picks a free port. `listen_msg=True` prints `Server listening on http://HOST:PORT`
    with the real port. `ready` is called with (host, port) (or `set()` if it is an Event)
    once the socket listens and SIGINT/SIGTERM would stop the server. A port that cannot be
    bound raises `BindError` (an `OSError` whose message is one line such as `cannot listen on
    127.0.0.1:8080: address already in use`). Signals are handled only when called from the
    main thread.
    """
    server = DevServer(app, host, port, sock=sock, **options)
    configure_logging()
    if listen_msg:
        print(f"Server listening on {server.url}", flush=True)

    def on_ready() -> None:
        if isinstance(ready, threading.Event):
            ready.set()
        elif ready is not None:
            ready(server.address)

    server.serve_forever(handle_signals=True, on_ready=on_ready)
