"""Where to listen, checked before any socket is made: a host string and a port 0-65535.

``getaddrinfo`` takes a port number modulo 65536 (99999 listens on 34463) and answers a
negative one with "Servname not supported for ai_socktype"; a port given where the host goes
(``start_server(8080)``) fails deep inside address formatting. Each error here names the value
and says what to write instead. Binding the socket is the server's business.
"""

from __future__ import annotations

__all__: list[str] = []

MAX_PORT = 65535


def check_address(host: object, port: object, caller: str) -> None:
    """Raise TypeError or ValueError, naming `caller`, unless `host`/`port` can be listened on."""
    if not isinstance(host, str):
        is_port = isinstance(host, int) and not isinstance(host, bool)
        hint = f"; to choose the port write {caller}(port={host!r})" if is_port else ""
        raise TypeError(
            f"{caller}: the first argument is the host ('localhost', '0.0.0.0', '::1'), "
            f"got {host!r}{hint}"
        )
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"{caller}: port must be an int, got {port!r}")
    check_port(port)


def check_port(port: int) -> None:
    """Raise ValueError naming `port` unless it is 0 (any free port) to 65535."""
    if not 0 <= port <= MAX_PORT:
        raise ValueError(f"port {port} is outside 0-{MAX_PORT} (0 picks a free port)")
