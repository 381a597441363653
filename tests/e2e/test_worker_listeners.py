"""The listening sockets gunicorn's arbiter hands microwsgi.workers.Worker: TCP over IPv4 and
IPv6 and a unix socket, all at once (the environ each gives compared with gthread's), and
systemd socket activation run for real as deploy/microwsgi-app.socket and .service set it up:
systemd-socket-activate listens, and starts gunicorn with LISTEN_FDS/LISTEN_PID when the first
connection arrives, which waits in the backlog meanwhile and is answered."""

from __future__ import annotations

import configparser
import http.client
import json
import re
import shlex
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    DEPLOY,
    HERE,
    REPO,
    START_TIMEOUT,
    Gunicorn,
    fetch,
    free_port,
    wait_until,
)
from tools import has_ipv6_loopback, require_program

pytestmark = pytest.mark.e2e

WORKER = "microwsgi.workers.Worker"
PLAIN = HERE / "plain.conf.py"
SEEN = ("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme")


def environ_over(address: str, host: str = "t") -> dict[str, Any]:
    """GET /environ through one of gunicorn's listeners, as its log names it."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(address[len("unix:") :])
    else:
        found = re.fullmatch(r"http://\[?([^\]]+)\]?:(\d+)", address)
        assert found, address
        sock = socket.create_connection((found.group(1), int(found.group(2))), timeout=10)
    with sock:
        sock.sendall(f"GET /environ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 200
        environ = json.loads(answer.read())
    return {key: environ.get(key) for key in SEEN}


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_tcp_ipv6_and_unix_listeners_at_once_give_gthreads_environ(
    gunicorn: Callable[..., Gunicorn], tmp_path: Path
) -> None:
    seen: dict[str, list[dict[str, Any]]] = {}
    for kind in ("gthread", WORKER):
        binds = ("127.0.0.1:0", "[::1]:0", f"unix:{tmp_path / kind}.sock")
        app = gunicorn("wsgi_app:app", worker_class=kind, threads=2, config=PLAIN, binds=binds)
        assert len(app.addresses) == 3, app.addresses
        answers = [environ_over(address) for address in app.addresses]
        answers.append(environ_over(app.addresses[2], host="example.org:8443"))
        # Ports differ between the two servers: keep whether each is there, not its value.
        seen[kind] = [without_port_numbers(answer) for answer in answers]
    assert seen[WORKER] == seen["gthread"]
    tcp, ipv6, unix, unix_with_port = seen[WORKER]
    assert (tcp["SERVER_NAME"], tcp["REMOTE_ADDR"]) == ("127.0.0.1", "127.0.0.1")
    assert (ipv6["SERVER_NAME"], ipv6["REMOTE_ADDR"]) == ("::1", "::1")
    # A unix socket has no address: gunicorn takes the server's name from Host.
    assert (unix["SERVER_NAME"], unix["REMOTE_ADDR"], unix["REMOTE_PORT"]) == ("t", "", None)
    assert unix_with_port["SERVER_NAME"] == "example.org"


def without_port_numbers(environ: dict[str, Any]) -> dict[str, Any]:
    """The two servers listen on different ports: keep whether a port is there, not which."""
    kept = dict(environ)
    for key in ("SERVER_PORT", "REMOTE_PORT"):
        if kept[key] not in ("", None) and kept[key].isdigit() and kept[key] not in ("80", "443"):
            kept[key] = "<port>"
    return kept


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read(DEPLOY / name)
    return parser


def test_systemd_socket_activation_with_the_shipped_units(tmp_path: Path) -> None:
    activate = require_program("systemd-socket-activate", "the socket activation test")
    socket_unit, service = unit("microwsgi-app.socket"), unit("microwsgi-app.service")
    host = socket_unit["Socket"]["ListenStream"].rsplit(":", 1)[0]
    port = free_port()  # the shipped 8000 may be taken on this machine
    command = shlex.split(service["Service"]["ExecStart"])
    assert command[0].endswith("/venv/bin/gunicorn") and command[1:3] == ["-c", command[2]]
    assert command[2].endswith("/deploy/gunicorn.conf.py") and command[-1] == "app:server"
    environment = dict(
        item.split("=", 1) for item in shlex.split(service["Service"]["Environment"])
    )
    # What the service's RuntimeDirectory and EnvironmentFile would provide on a real host.
    environment["MICROWSGI_CONTROL_SOCKET"] = str(tmp_path / "gunicorn.ctl")
    environment["MICROWSGI_WORKER_CLASS"] = WORKER
    environment["PYTHONPATH"] = str(REPO)  # this checkout, as the venv would hold it
    setenv = [f"--setenv={name}={value}" for name, value in environment.items()]
    app = Gunicorn(
        "backend_app:server",
        HERE,
        tmp_path / "logs",
        worker_class=None,
        threads=None,
        binds=(),  # the inherited socket only: the config's bind is ignored
        launcher=[activate, f"--listen={host}:{port}", *setenv],
    )
    try:
        app.spawn()
        listening = f"Listening on {host}:{port} as 3."  # systemd-socket-activate's own line
        wait_until(lambda: listening in app.stderr(), START_TIMEOUT, "the socket unit's socket")
        assert not app.log()  # no gunicorn yet
        # gunicorn starts only now, for this first connection, which waits in the backlog.
        answer = fetch(port, "/id")
        assert answer.status == 200
        app.wait_booted()
        assert answer.json()["pid"] in app.worker_pids()
        log = app.log()
        assert f"Listening at: http://{host}:{port} ({app.proc.pid})" in log  # type: ignore[union-attr]
        assert f"Using worker: {WORKER}" in log and "127.0.0.1:8000" not in log
        assert fetch(port, "/id").status == 200
    finally:
        if app.proc is not None:
            assert app.stop() == 0
