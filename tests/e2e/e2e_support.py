"""Helpers for the end-to-end tests: real gunicorn and nginx processes on 127.0.0.1.

(A module of its own rather than conftest.py, so that test modules can import it by a name no
other conftest.py shares.)

Every process started here is stopped by the fixture that started it, whatever the test did, and
every wait is bounded: a test can fail, it cannot hang or leave a server behind.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gunicorn_process import DEPLOY as DEPLOY
from gunicorn_process import REPO as REPO
from gunicorn_process import START_TIMEOUT as START_TIMEOUT
from gunicorn_process import STOP_TIMEOUT as STOP_TIMEOUT
from gunicorn_process import Gunicorn as Gunicorn
from gunicorn_process import accepts_connections as accepts_connections
from gunicorn_process import free_port as free_port
from gunicorn_process import open_files as open_files
from gunicorn_process import stop_group as stop_group
from gunicorn_process import stop_process as stop_process
from gunicorn_process import wait_until as wait_until
from tools import require_program

EXAMPLES = REPO / "examples"
HERE = Path(__file__).resolve().parent


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str | None = None,
    conn: http.client.HTTPConnection | None = None,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """One real HTTP request to 127.0.0.1:port (on `conn` if given, else on a new connection).

    `source` sets the client's own address: any 127.x.y.z works on Linux, which lets a test tell
    the client's address apart from a proxy's.
    """
    own = conn is None
    if conn is None:
        source_address = (source, 0) if source else None
        if tls is None:
            conn = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=10, source_address=source_address
            )
        else:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", port, timeout=10, source_address=source_address, context=tls
            )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        if own:
            conn.close()


def raw_request(port: int, data: bytes, *, source: str | None = None) -> Response:
    """Send `data` exactly as given (repeated fields, odd shapes) on a new connection to
    127.0.0.1:port; the answer parsed by http.client."""
    source_address = (source, 0) if source else None
    with socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=source_address
    ) as sock:
        sock.sendall(data)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        try:
            return Response(answer.status, answer.headers, answer.read())
        finally:
            answer.close()


def read_answer(reader: Any) -> bytes:
    """The body of one answer with a Content-Length, read from a raw connection's file."""
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return bytes(reader.read(length))


def nginx_binary() -> str:
    return require_program("nginx", "the tests of nginx in front of gunicorn")


def run_checked(command: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=STOP_TIMEOUT)
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


# What tests/e2e renders in deploy/nginx.conf; the header of that file names the same three things.
UPSTREAM_BLOCK = re.compile(r"upstream microwsgi_app \{(.*?)\n\}", re.S)
UPSTREAM_SERVER = re.compile(r"^([ \t]*)server \S+(.*);\n", re.M)
LISTEN = re.compile(r"^([ \t]*)listen [^;]+;\n", re.M)
STATIC_ROOT = "/srv/microwsgi-app/static/"


def _replace_lines(text: str, pattern: re.Pattern[str], new: Callable[[re.Match[str]], str]) -> str:
    """Put `new(first match)` where the first line matching `pattern` was; drop the other ones."""
    first = pattern.search(text)
    assert first, f"deploy/nginx.conf has no line matching {pattern.pattern!r}"
    rest = pattern.sub("", text[first.end() :])
    return text[: first.start()] + new(first) + rest


def render_site(
    template: str,
    *,
    upstreams: Sequence[str],
    listen: Sequence[str],
    static_dir: Path,
    certificate: tuple[Path, Path] | None = None,
) -> str:
    """deploy/nginx.conf with the test's upstream servers, listen lines and static directory.

    Everything else (headers, timeouts, failover, buffering, keepalive) is the shipped file as it
    is. Each substitution must find its target, so a change to the shipped file that would leave
    part of it untested fails here instead.
    """
    block = UPSTREAM_BLOCK.search(template)
    assert block, "deploy/nginx.conf has no `upstream microwsgi_app { ... }` block"
    servers = _replace_lines(
        block.group(1),
        UPSTREAM_SERVER,
        lambda m: "".join(f"{m.group(1)}server {address}{m.group(2)};\n" for address in upstreams),
    )
    site = template[: block.start(1)] + servers + template[block.end(1) :]

    def listen_lines(first: re.Match[str]) -> str:
        indent = first.group(1)
        lines = "".join(f"{indent}listen {item};\n" for item in listen)
        if certificate:
            cert, key = certificate
            lines += f"{indent}ssl_certificate {cert};\n{indent}ssl_certificate_key {key};\n"
        return lines

    site = _replace_lines(site, LISTEN, listen_lines)
    assert STATIC_ROOT in site, f"deploy/nginx.conf no longer serves {STATIC_ROOT}"
    return site.replace(STATIC_ROOT, f"{static_dir}/")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, made with the openssl command."""
    openssl = require_program("openssl", "the TLS test makes a certificate with it")
    cert, key = directory / "cert.pem", directory / "key.pem"
    run_checked(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        "openssl req",
    )  # fmt: skip
    return cert, key


@dataclass
class Nginx:
    """The real nginx, run as the test user with every path it writes inside `root`."""

    root: Path
    site: str
    port: int
    tls_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def write_config(self) -> None:
        (self.root / "site.conf").write_text(self.site)
        temp = {name: self.root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        # Run as root (as in CI), nginx would switch its workers to `nobody`, who can read
        # neither the test's static files nor its temporary directories: keep them as root. As
        # any other user nginx cannot switch and the directive would only draw a warning.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{user}worker_processes 1;\n"
            f"pid {self.root / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    default_type application/octet-stream;\n"
            "    types { text/plain txt; text/css css; }\n"
            f"    access_log {self.root / 'access.log'};\n"
            f"    client_body_temp_path {temp['body']};\n"
            f"    proxy_temp_path {temp['proxy']};\n"
            f"    fastcgi_temp_path {temp['fastcgi']};\n"
            f"    uwsgi_temp_path {temp['uwsgi']};\n"
            f"    scgi_temp_path {temp['scgi']};\n"
            f"    include {self.root / 'site.conf'};\n"
            "}\n"
        )

    def command(self, *extra: str) -> list[str]:
        # -e: the error log nginx opens before it has read the config (else /var/log/nginx).
        paths = ["-p", str(self.root), "-c", str(self.conf), "-e", str(self.error_log)]
        return [nginx_binary(), *paths, *extra]

    def start(self) -> Nginx:
        self.write_config()
        run_checked(self.command("-t"), "nginx -t on the rendered deploy/nginx.conf")
        self.proc = subprocess.Popen(
            self.command("-g", "daemon off;"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: see stop_group
        )
        wait_until(self._ready, START_TIMEOUT, "nginx to listen")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = self.error_log.read_text() if self.error_log.exists() else ""
            pytest.fail(f"nginx exited with {self.proc.returncode}:\n{log}")
        return accepts_connections(self.port)

    def stop(self) -> int:
        assert self.proc is not None
        # SIGTERM is nginx's fast shutdown: the master stops its workers at once.
        return stop_group(self.proc, signal.SIGTERM)
