"""A gunicorn worker class serving with microwsgi's HTTP engine: ``-k microwsgi.workers.Worker``.

This module owns the adapter between gunicorn and the engine (``microwsgi.server.Engine``, the
same one the built-in server runs): gunicorn's settings turned into a `ServerConfig` and
`Hooks`, the worker's life under the arbiter (signals, the heartbeat, a graceful or a quick
stop, the restart after `max_requests`), the pre/post_request hooks and the access log through
gunicorn's logger, and the connections spread across the master's workers (the load table is
``shares.py``'s). Settings it cannot honour are warned about at boot, one line each; TLS and
the uwsgi protocol are refused at boot. What gunicorn's workers add to each request's environ
(the scheme and headers a trusted proxy may set) is ``adapter.py``'s; HTTP itself
(parsing, framing, keep-alive, limits, timeouts) is the engine's; the listening sockets, the
worker processes, logging set-up and the master's signals are the arbiter's.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import FrameType
from typing import Any, Final

import gunicorn
from gunicorn.arbiter import Arbiter
from gunicorn.config import Config, PostRequest, PreRequest
from gunicorn.glogging import Logger
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.http.wsgi import FileWrapper as IteratedFile
from gunicorn.workers import base

from ..server import Engine, Hooks, ServerConfig
from ..server.exchange import Exchange
from .adapter import ErrorStream, ProxyPolicy, RequestView, ResponseView
from .shares import Shares

__all__ = ["Worker"]

# What `limit_request_line = 0` ("unlimited") still allows of a request-target: gunicorn's own
# fast parser stops there too, and one request must not take unbounded memory.
UNLIMITED_TARGET: Final = 1 << 20

# How long a stopping worker keeps idle keep-alive connections for a request already on its
# way (at most their keep-alive timeout): what gunicorn's gthread worker does.
_KEEPALIVE_ON_STOP: Final = 2.0

# The arbiter kills a worker still running `graceful_timeout` after its SIGTERM: the worker
# gives up on its requests this much earlier, so that it exits by itself and says so.
_BEFORE_THE_KILL: Final = 0.5

# microwsgi's options that gunicorn has no setting for, read from the environment.
OWN_OPTIONS: Final = {
    "MICROWSGI_HEADER_TIMEOUT": ("header_timeout", float),
    "MICROWSGI_IO_TIMEOUT": ("io_timeout", float),
    "MICROWSGI_MAX_BODY_SIZE": ("max_body_size", int),
}

# Settings this worker does not honour, and why. Each one set to something other than its
# default is warned about at boot, in one line (docs/production.md's settings table lists them too).
_TLS_IN_FRONT = "terminate TLS in front of gunicorn (deploy/nginx.conf)"
_TLS = f"it serves no TLS: {_TLS_IN_FRONT}"
_HTTP2 = "it serves HTTP/1.1 only"
_STRICT = "its parser is as strict as gunicorn's defaults, with no lenient mode"
_ASGI = "a setting of gunicorn's ASGI worker"
NOT_HONOURED: Final = {
    "http_protocols": _HTTP2,
    "http2_cleartext": _HTTP2,
    "http2_max_concurrent_streams": _HTTP2,
    "http2_initial_window_size": _HTTP2,
    "http2_max_frame_size": _HTTP2,
    "http2_max_header_list_size": _HTTP2,
    "proxy_protocol": "it does not read the PROXY protocol (X-Forwarded-For does that job)",
    "proxy_allow_ips": "it does not read the PROXY protocol",
    "uwsgi_allow_ips": "it speaks HTTP only",
    "http_parser": "it parses with microwsgi's own parser",
    "casefold_http_method": _STRICT,
    "permit_unconventional_http_method": _STRICT,
    "permit_unconventional_http_version": _STRICT,
    "permit_obsolete_folding": _STRICT,
    "strip_header_spaces": _STRICT,
    "asgi_loop": _ASGI,
    "asgi_lifespan": _ASGI,
    "asgi_disconnect_grace_period": _ASGI,
    "websocket_max_message_size": _ASGI,
    "root_path": _ASGI,
    "tmp_upload_dir": "gunicorn's own workers do not use it either",
    "ca_certs": _TLS,
    "cert_reqs": _TLS,
    "ciphers": _TLS,
    "suppress_ragged_eofs": _TLS,
    "do_handshake_on_connect": _TLS,
}

NAME: Final = "microwsgi.workers.Worker"
_OLDEST_GUNICORN: Final = (23, 0)


def refusal(cfg: Config, environ: Mapping[str, str]) -> str | None:
    """The one line saying why this worker cannot start with `cfg`, or None."""
    if gunicorn.version_info < _OLDEST_GUNICORN:
        # 22 lacks the forwarder_headers and header_map settings the worker applies.
        return f"{NAME} needs gunicorn 23 or later, not {gunicorn.__version__}"
    if cfg.is_ssl:
        return f"{NAME} does not serve TLS (certfile/keyfile): {_TLS_IN_FRONT}, or use gthread"
    if getattr(cfg, "protocol", "http") != "http":  # a setting since gunicorn 23
        return f"{NAME} speaks HTTP only, not protocol = {cfg.protocol!r}"
    try:
        server_config(cfg, None, environ)
    except ValueError as exc:
        return f"{NAME}: {exc}"
    return None


def ignored_settings(cfg: Config) -> list[str]:
    """One line for each setting in `cfg` that this worker does not honour."""
    defaults = Config()
    return [
        f"{name} = {cfg.settings[name].get()!r} is ignored by {NAME}: {why}"
        for name, why in NOT_HONOURED.items()
        if name in cfg.settings and cfg.settings[name].get() != defaults.settings[name].get()
    ]


def server_config(
    cfg: Config, max_requests: int | None, environ: Mapping[str, str] = os.environ
) -> ServerConfig:
    """The engine's options for gunicorn's settings (ValueError naming a bad one)."""
    # gunicorn's own parser clamps its limits so (gunicorn/http/message.py): 0 or past the cap
    # means the cap, and a field size of 0 means its default.
    fields = cfg.limit_request_fields
    fields = fields if 0 < fields <= MAX_HEADERS else MAX_HEADERS
    field_size = cfg.limit_request_field_size
    field_size = field_size if field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
    line = cfg.limit_request_line
    limits: dict[str, Any] = (
        {"max_request_line": None, "max_target": UNLIMITED_TARGET}
        if line == 0
        else {"max_request_line": min(line, MAX_REQUEST_LINE)}
    )
    own: dict[str, Any] = {}
    for variable, (option, kind) in OWN_OPTIONS.items():
        text = environ.get(variable, "").strip()
        if text:
            try:
                own[option] = kind(text)
            except ValueError:
                raise ValueError(f"{variable}={text!r} is not a number") from None
    # keepalive = 0: every answer closes (see Worker.prepare), and a new connection has the
    # header timeout to send its request.
    keepalive = cfg.keepalive or own.get("header_timeout", ServerConfig.header_timeout)
    config = ServerConfig(
        threads=cfg.threads,
        max_header_count=fields,
        max_field_size=field_size,
        # The whole header section, as gunicorn bounds it (its max_buffer_headers).
        max_header_bytes=fields * (field_size + 2) + 4,
        keepalive_timeout=keepalive,
        shutdown_timeout=max(0.0, cfg.graceful_timeout - _BEFORE_THE_KILL),
        # As gthread does: on a stop, a kept-alive connection may still bring a request.
        keepalive_on_stop=min(_KEEPALIVE_ON_STOP, keepalive),
        access_log=False,  # gunicorn's logger writes it (Worker.finish)
        max_connections=cfg.worker_connections,
        max_requests=max_requests,
        **limits,
        **own,
    )
    try:
        config.check()
    except ValueError as exc:
        variables = {option: variable for variable, (option, _) in OWN_OPTIONS.items()}
        option = str(exc).split()[0]
        raise ValueError(f"{variables.get(option, option)}: {exc}") from None
    return config


class _Forward(logging.Handler):
    """Hands microwsgi's log records to gunicorn's error log, with its handlers and format."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def route_logs(error_log: logging.Logger) -> None:
    """Send the ``microwsgi`` loggers' records to gunicorn's error log at its level, unless
    the application's logging configuration (``logconfig_dict`` ...) already handles them."""
    logger = logging.getLogger("microwsgi")
    if logger.handlers:
        return
    logger.addHandler(_Forward(error_log))
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(error_log.getEffectiveLevel())


class Worker(base.Worker):  # type: ignore[misc]
    """gunicorn's worker contract (``gunicorn.workers.base.Worker``) served by the engine."""

    engine: Engine | None = None
    alive: bool
    # The load table of this master's workers (made in the master by check_config): the
    # connections a burst brings are spread across the workers (see shares.py).
    shares: Shares | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # In the master, before the fork: this worker's slot in the table. With reuse_port
        # each worker listens on a socket of its own, which the kernel spreads connections
        # across: a connection left on it would wait for nobody.
        reuse_port = self.cfg.reuse_port and hasattr(socket, "SO_REUSEPORT")
        shares = type(self).shares
        self._slot = shares.give() if shares is not None and not reuse_port else None

    @classmethod
    def check_config(cls, cfg: Config, log: Any) -> None:
        """At the master's boot: refuse what cannot work, warn about what is ignored."""
        problem = refusal(cfg, os.environ)
        if problem is not None:
            raise RuntimeError(problem)  # gunicorn prints it as one line and exits 1
        for line in ignored_settings(cfg):
            log.warning(line)
        if cls.shares is None:
            cls.shares = Shares()

    def init_process(self) -> None:
        problem = refusal(self.cfg, os.environ)
        if problem is not None:  # a reload (SIGHUP) brought a setting that cannot work
            self.log.error(problem)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        route_logs(logging.getLogger("gunicorn.error"))
        super().init_process()

    def run(self) -> None:
        cfg = self.cfg
        limit = self.max_requests if cfg.max_requests > 0 else None
        self.config = server_config(cfg, limit)
        self._proxy = ProxyPolicy(cfg)
        self._close_always = not cfg.keepalive
        self._pre_request = cfg.pre_request
        if self._pre_request is PreRequest.pre_request and not self.log.error_log.isEnabledFor(
            logging.DEBUG
        ):
            self._pre_request = None  # PERF: the default hook only logs at debug level
        self._post_request = cfg.post_request
        if self._post_request is PostRequest.post_request:
            self._post_request = None  # PERF: the default hook does nothing
        # PERF: gunicorn's own Logger writes no access line without an access log; a logger
        # class of the user's (statsd's counts requests) is called whatever.
        self._access = self.log.access
        if type(self.log) is Logger and not getattr(self.log, "access_log_enabled", True):
            self._access = None
        hooks = Hooks(
            # PERF: the environ's additions alone when there is nothing else to do: one call.
            prepare=self.prepare
            if self._close_always or self._pre_request is not None
            else self._proxy.apply,
            # PERF: with neither, no hook after each request (nor the engine's timing of it).
            finish=None if self._access is None and self._post_request is None else self.finish,
            tick=self.heartbeat,
            # gunicorn asks for a notify() at least every self.timeout seconds.
            tick_interval=min(1.0, self.timeout / 2) if self.timeout else 1.0,
            defer_accept=self._join_shares(),
        )
        # What gunicorn's workers put in every environ, and what differs from the engine's.
        environ: dict[str, Any] = {
            "wsgi.errors": ErrorStream(cfg),
            "wsgi.multiprocess": cfg.workers > 1,
        }
        if cfg.sendfile is False:
            environ["wsgi.file_wrapper"] = IteratedFile  # read, not sent with os.sendfile
        sockets = [listener.sock for listener in self.sockets]
        self.engine = Engine(self.wsgi, sockets, self.config, hooks, extra_environ=environ)
        if not self.alive:  # stopped while booting
            self.engine.stop()
        try:
            self.engine.run()
        finally:
            self._leave()

    def _join_shares(self) -> Callable[[int], bool] | None:
        """Take this worker's slot in the load table; the engine's `defer_accept` hook."""
        if self.shares is None or self._slot is None:
            return None
        self.shares.join(self._slot)
        return self.shares.defer

    def _leave(self) -> None:
        if self.shares is not None:
            self.shares.leave()  # nothing if this worker has no slot

    # -- around each request (the engine's serving threads) ---------------------------------

    def prepare(self, exchange: Exchange) -> None:
        """What gunicorn's workers do before calling the application."""
        if self._close_always:
            exchange.close_after = True
        self._proxy.apply(exchange)
        if self._pre_request is not None:
            self._pre_request(self, RequestView(exchange))

    def finish(self, exchange: Exchange) -> None:
        """The access line through gunicorn's logger, then the post_request hook."""
        access, post_request = self._access, self._post_request
        request, response = RequestView(exchange), ResponseView(exchange)
        try:
            if access is not None:
                access(response, request, exchange.environ, timedelta(seconds=exchange.duration))
        finally:
            if post_request is not None:
                post_request(self, request, exchange.environ, response)

    # -- the loop thread -------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Tell the arbiter this worker is alive, unless every thread is stuck in a request."""
        assert self.engine is not None
        if self.alive and self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
        if not self.alive:  # the reloader, or a signal that came before the engine existed
            self._leave()
            self.engine.stop()
        elif self.shares is not None:
            self.shares.publish(self.engine.open_connections)
        if self.healthy():
            self.notify()

    def healthy(self) -> bool:
        """False when every thread has been answering one connection for longer than `timeout`
        (half gunicorn's; its request, or the requests a pipelining client had already sent):
        the notifications stop, and the arbiter kills the worker once its own timeout has
        passed without one, and starts a fresh one. PERF: the engine's count, kept for its
        own scheduling, not a record of every request."""
        if not self.timeout:
            return True
        assert self.engine is not None
        stuck = self.engine.busy_threads(time.monotonic() - self.timeout)
        return stuck < self.config.threads

    # -- signals (gunicorn's base worker installs the handlers) ------------------------------

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: stop accepting, finish the requests in flight (graceful_timeout), exit 0."""
        self.alive = False
        self._leave()
        if self.engine is not None:
            self.engine.stop()

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGQUIT, SIGINT: stop now, without waiting for requests in flight."""
        if self.engine is None:
            super().handle_quit(sig, frame)
            return
        self.alive = False
        self._leave()
        self.cfg.worker_int(self)
        self.engine.stop(force=True)

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """SIGABRT, the arbiter's timeout: stop now and exit 1."""
        if self.engine is not None:
            self.engine.stop(force=True)
        super().handle_abort(sig, frame)
