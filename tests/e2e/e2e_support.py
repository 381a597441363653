"""Helpers for the end-to-end tests: real gunicorn and nginx processes on 127.0.0.1.

(A module of its own rather than conftest.py, so that test modules can import it by a name no
other conftest.py shares.)

Every process started here is stopped by the fixture that started it, whatever the test did, and
every wait is bounded: a test can fail, it cannot hang or leave a server behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tools import require_program

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
EXAMPLES = REPO / "examples"
HERE = Path(__file__).resolve().parent

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it is true; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for programs that cannot be told to bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Send `sig`, wait a bounded time, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    return proc.returncode


def stop_group(proc: subprocess.Popen[bytes], sig: int) -> int:
    """Stop a server started with `start_new_session=True`, and every process it started.

    `sig` asks the master to stop its workers itself; whatever is left afterwards (workers of a
    master that died, or one that did not stop in time) is killed through the process group,
    whose id is the master's pid: a SIGKILLed nginx master would otherwise leave its workers
    running, still holding the port.
    """
    code = stop_process(proc, sig)
    # ProcessLookupError: the group is gone, the master stopped its workers as asked.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return code


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


@dataclass
class Gunicorn:
    """A real gunicorn started with the shipped deploy/gunicorn.conf.py, overridden for the test."""

    app: str
    chdir: Path
    logdir: Path
    worker_class: str = "sync"
    workers: int = 1
    threads: int = 1
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def error_log(self) -> Path:
        return self.logdir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.logdir / "access.log"

    @property
    def stderr_log(self) -> Path:
        """What the processes wrote to stderr outside gunicorn's logs."""
        return self.logdir / "stderr.log"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "-c", str(DEPLOY / "gunicorn.conf.py"),
            # Port 0: the kernel picks a free port and gunicorn logs it, so no other process can
            # take the port between choosing and binding it.
            "--bind", "127.0.0.1:0",
            "--workers", str(self.workers),
            "--worker-class", self.worker_class,
            "--threads", str(self.threads),
            "--graceful-timeout", "10",
            "--error-logfile", str(self.error_log),
            "--access-logfile", str(self.access_log),
            "--chdir", str(self.chdir),
            self.app,
        ]  # fmt: skip

    def start(self) -> Gunicorn:
        self.logdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        # The code under test is this checkout, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.stderr_log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: see stop_group
            )
        wait_until(self._booted, START_TIMEOUT, f"gunicorn {self.app} to boot")
        wait_until(lambda: accepts_connections(self.port), START_TIMEOUT, "gunicorn's socket")
        return self

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def _booted(self) -> bool:
        assert self.proc is not None
        log = self.log()
        if self.proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{log}")
        listening = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log)
        if listening:
            self.port = int(listening.group(1))
        return bool(listening) and log.count("Booting worker") >= self.workers

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """SIGTERM: graceful (requests in flight finish); SIGQUIT: quick."""
        assert self.proc is not None
        return stop_group(self.proc, sig)


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
