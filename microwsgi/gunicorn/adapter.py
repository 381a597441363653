"""A request as gunicorn's own workers present it, for the gunicorn worker class (worker.py).

This module owns what those workers add to the engine's environ and show their hooks: the
scheme and the headers a trusted proxy may set (`forwarded_allow_ips`, `secure_scheme_headers`,
`forwarder_headers`, `header_map`, a ``SCRIPT_NAME``), SERVER_NAME on a unix socket,
``wsgi.errors`` writing to gunicorn's error log, and the `Request`/`Response` attributes that
the pre/post_request hooks and gunicorn's access-log atoms read. Each rule mirrors gunicorn's
(``gunicorn/http/message.py`` and ``http/wsgi.py``); parsing and the environ itself are the
engine's, the worker's life is ``worker.py``'s.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from gunicorn.config import Config
from gunicorn.http.wsgi import WSGIErrorsWrapper

from ..server.exchange import Exchange
from ..server.protocol import ProtocolError

__all__: list[str] = []  # for worker.py

# How many peer addresses the trust decision is remembered for (a bound: many clients).
_TRUST_CACHE: Final = 1024


class ProxyPolicy:
    """Applies gunicorn's forwarding rules to one request (`apply`), from the worker's config.

    A peer is trusted when its address is in `forwarded_allow_ips` ("*": any), or when it came
    over a unix socket. Only a trusted peer's `secure_scheme_headers` decide the scheme (two
    of them that disagree are a 400) and only its `forwarder_headers` (names with "_", such
    as SCRIPT_NAME) reach the environ; from anyone else those are ignored. Other names with
    "_" follow `header_map`: dropped (the engine already does), refused (400), or mapped.
    """

    def __init__(self, cfg: Config) -> None:
        allowed = list(cfg.forwarded_allow_ips)
        self._anyone = "*" in allowed
        self._networks = [ipaddress.ip_network(entry) for entry in allowed if entry != "*"]
        self._trusted: dict[str, bool] = {}
        # gunicorn matches its upper-cased field names against these keys as given.
        self._schemes = {
            name.lower(): value
            for name, value in cfg.secure_scheme_headers.items()
            if name.isupper()
        }
        self._forwarders = {name.lower() for name in cfg.forwarder_headers}
        self._header_map = cfg.header_map
        self._script_name = os.environ.get("SCRIPT_NAME", "")

    def trusts(self, address: str) -> bool:
        if not address:
            return True  # a unix socket: only local processes reach it
        known = self._trusted.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
                known = self._anyone or any(ip in network for network in self._networks)
            except ValueError:
                known = self._anyone
            if len(self._trusted) < _TRUST_CACHE:
                self._trusted[address] = known
        return known

    def apply(self, exchange: Exchange) -> None:
        """Set the environ's scheme and forwarded keys; ProtocolError (400) where gunicorn's
        parser refuses the request."""
        environ, address = exchange.environ, exchange.peer[0]
        trusted = self.trusts(address)
        schemes = self._schemes if trusted else {}
        forwarders = self._forwarders if trusted else set()
        scheme: str | None = None
        script_name = self._script_name
        for name, value in exchange.head.headers:
            if name in schemes:
                said = "https" if value == schemes[name] else "http"
                if scheme is not None and said != scheme:
                    raise ProtocolError(400, "contradictory scheme headers")
                scheme = said
            if "_" in name:
                if name in forwarders or "*" in forwarders or self._header_map == "dangerous":
                    key = "HTTP_" + name.upper().replace("-", "_")
                    environ[key] = f"{environ[key]},{value}" if key in environ else value
                    if name == "script_name":
                        script_name = value
                elif self._header_map == "refuse":
                    raise ProtocolError(400, f"invalid header name {name!r}")
        if scheme is not None:
            environ["wsgi.url_scheme"] = scheme
        if script_name:
            self._mount(exchange, script_name)
        if not address:
            self._unix_server_name(exchange)

    @staticmethod
    def _mount(exchange: Exchange, script_name: str) -> None:
        path = exchange.head.path
        if not path.startswith(script_name):
            # gunicorn's ConfigurationProblem: a proxy and an app that disagree about the mount.
            raise ProtocolError(500, f"request path {path!r} is not under SCRIPT_NAME")
        rest = path[len(script_name) :]
        environ = exchange.environ
        environ["SCRIPT_NAME"] = script_name
        environ["PATH_INFO"] = unquote_to_bytes(rest).decode("latin-1") if "%" in rest else rest

    @staticmethod
    def _unix_server_name(exchange: Exchange) -> None:
        """A unix socket has no address to speak of: gunicorn takes SERVER_NAME and _PORT from
        Host (else the socket's path and no port), and sets no REMOTE_PORT."""
        environ = exchange.environ
        host = environ.get("HTTP_HOST")
        if host:
            parts = host.split(":")
            environ["SERVER_NAME"] = parts[0]
            default = "443" if environ["wsgi.url_scheme"] == "https" else "80"
            environ["SERVER_PORT"] = parts[1] if len(parts) > 1 else default
        else:
            environ["SERVER_NAME"] = str(exchange.sock.getsockname())
            environ["SERVER_PORT"] = ""
        del environ["REMOTE_PORT"]  # gunicorn sets none for a peer without an address


class ErrorStream:
    """``wsgi.errors``: writes to gunicorn's error log, as its workers' stream does.

    The streams are looked up at each write, so a log file reopened on SIGUSR1 is written to.
    """

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg

    def write(self, data: str) -> None:
        WSGIErrorsWrapper(self._cfg).write(data)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Every write is flushed already."""


class RequestView:
    """The attributes of gunicorn's `Request` that hooks and access-log atoms read."""

    __slots__ = ("_exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    @property
    def method(self) -> str:
        return self._exchange.head.method

    @property
    def uri(self) -> str:
        return self._exchange.head.target

    @property
    def path(self) -> str:
        return self._exchange.head.path

    @property
    def query(self) -> str:
        return self._exchange.head.query

    fragment = ""  # the engine drops it, as gunicorn's parser keeps it apart

    @property
    def version(self) -> tuple[int, int]:
        return (1, 1) if self._exchange.head.http_version == "1.1" else (1, 0)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(name.upper(), value) for name, value in self._exchange.head.headers]

    @property
    def scheme(self) -> str:
        return str(self._exchange.environ["wsgi.url_scheme"])

    @property
    def peer_addr(self) -> tuple[str, int] | str:
        address, port = self._exchange.peer
        return (address, int(port)) if address else address

    remote_addr = peer_addr

    @property
    def body(self) -> Any:
        return self._exchange.environ["wsgi.input"]

    def should_close(self) -> bool:
        return not self._exchange.head.keep_alive


class ResponseView:
    """The attributes of gunicorn's `Response` that hooks and access-log atoms read."""

    __slots__ = ("_exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    @property
    def status(self) -> str | None:
        return self._exchange.status

    @property
    def status_code(self) -> int | None:
        status = self._exchange.status
        return int(status[:3]) if status else None

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self._exchange.headers

    @property
    def sent(self) -> int:
        return self._exchange.bytes_sent

    @property
    def headers_sent(self) -> bool:
        return self._exchange.headers_sent
