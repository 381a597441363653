"""The servers a soak can run against, each a real process on 127.0.0.1 serving `soak_app`.

A target is a function `start(workdir, settings) -> RunningServer`, registered in `TARGETS` by
name. `RunningServer` says where the server listens, which process to sample from /proc (for
gunicorn, its worker rather than the arbiter), which process gets SIGTERM, and how to stop it
whatever happened. Adding a server is one function here and one line in `TARGETS`.

Every server runs in its own session, with stdout and stderr in a log file (a pipe nobody reads
would block a server that logs a lot), and is stopped with bounded waits, then killed.
It leaves the traffic to `soak.py`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.wire import READY_TIMEOUT, REPO_ROOT, _listening_socket, _wait_ready, _worker_pids

__all__ = ["TARGETS", "ProcStats", "RunningServer", "Settings", "start_target"]

APP = "benchmarks.soak_app:app"
STOP_TIMEOUT = 30.0
_LISTENING = re.compile(r"Server listening on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Settings:
    """What every target is configured with, each in its own words."""

    threads: int = 8
    # Idle keep-alive connections must outlive the soak: they are checked at its end.
    idle_timeout: float = 3600.0
    # microwsgi only (the live fuzz shortens it so incomplete heads end in 408 quickly).
    header_timeout: float | None = None


@dataclass(frozen=True)
class ProcStats:
    """One /proc sample of a process: resident memory, open descriptors, threads."""

    rss_kib: int
    fds: int
    threads: int

    @classmethod
    def read(cls, pid: int) -> ProcStats:
        values = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(value.split()[0])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return cls(values.get("VmRSS", 0), fds, values.get("Threads", 0))


def context_switches(pid: int) -> tuple[int, int]:
    """Voluntary and involuntary context switches of all of `pid`'s live threads."""
    voluntary = involuntary = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


@dataclass
class RunningServer:
    """A started server: where it listens, what to sample, how to signal and stop it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    threads: int
    description: str = ""
    command: list[str] = field(default_factory=list)
    sampled_pid: int = 0
    host: str = "127.0.0.1"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def sample(self) -> ProcStats:
        return ProcStats.read(self.sampled_pid)

    def send_signal(self, signum: int) -> None:
        """Signal the process that was started (gunicorn's arbiter, not its worker)."""
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit status once the process has exited within `timeout`, else None."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL to the whole session; the exit status."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            if self.wait(STOP_TIMEOUT) is None:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        return self.proc.returncode


def _spawn(
    command: list[str], workdir: Path, name: str, pass_fds: tuple[int, ...] = ()
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    return proc, log_path


def _ready(server: RunningServer) -> RunningServer:
    """Wait (bounded) until the server answers; stop it and raise if it never does."""
    try:
        _wait_ready(server.port, "/small?n=ready", server.proc, READY_TIMEOUT)
    except BaseException:
        server.stop()
        raise
    if not server.sampled_pid:
        server.sampled_pid = server.proc.pid
    return server


def _on_socket(
    name: str, workdir: Path, settings: Settings, command: Callable[[int], list[str]], about: str
) -> RunningServer:
    """Start `command(fd)` on a socket we bind ourselves (no port is guessed or raced for)."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    argv = command(sock.fileno())
    try:
        proc, log_path = _spawn(argv, workdir, name, (sock.fileno(),))
    finally:
        sock.close()  # the server holds its own copy of the descriptor
    return _ready(RunningServer(name, proc, port, log_path, settings.threads, about, argv))


def start_microwsgi(workdir: Path, settings: Settings) -> RunningServer:
    """microwsgi's dev server through its CLI, `python -m microwsgi run` (port 0)."""
    command = [
        *(sys.executable, "-m", "microwsgi", "run", APP, "--host", "127.0.0.1", "--port", "0"),
        *("--threads", str(settings.threads), "--no-access-log"),
        *("--keepalive-timeout", str(settings.idle_timeout)),
    ]
    if settings.header_timeout is not None:
        command += ["--header-timeout", str(settings.header_timeout)]
    proc, log_path = _spawn(command, workdir, "microwsgi")
    deadline = time.monotonic() + READY_TIMEOUT
    while (match := _LISTENING.search(log_path.read_text(errors="replace"))) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            RunningServer("microwsgi", proc, 0, log_path, settings.threads).stop()
            raise RuntimeError(f"microwsgi did not start:\n{log_path.read_text()}")
        time.sleep(0.02)
    about = f"microwsgi dev server, --threads {settings.threads}"
    return _ready(
        RunningServer(
            "microwsgi", proc, int(match.group(1)), log_path, settings.threads, about, command
        )
    )


def start_waitress(workdir: Path, settings: Settings) -> RunningServer:
    """waitress with the connection limit raised so that the idle clients are not refused."""
    launch = (
        "import socket, sys, waitress; from benchmarks.soak_app import app; "
        "waitress.serve(app, sockets=[socket.socket(fileno=int(sys.argv[1]))], "
        f"threads={settings.threads}, connection_limit=1000, "
        f"channel_timeout={settings.idle_timeout}, backlog=1024)"
    )
    about = (
        f"waitress, --threads={settings.threads} --connection-limit=1000"
        f" --channel-timeout={settings.idle_timeout:g}"
    )
    return _on_socket(
        "waitress", workdir, settings, lambda fd: [sys.executable, "-c", launch, str(fd)], about
    )


def start_gunicorn_gthread(workdir: Path, settings: Settings) -> RunningServer:
    """gunicorn's gthread worker, one process; the worker is what gets sampled."""
    keepalive = str(int(settings.idle_timeout))

    def command(fd: int) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--chdir", str(REPO_ROOT)),
            *("--log-level", "warning", "--graceful-timeout", "20", "--keep-alive", keepalive),
            *("--worker-class", "gthread", "--workers", "1", "--threads", str(settings.threads)),
            APP,
        ]

    about = f"gunicorn gthread, -w 1 --threads {settings.threads} --keep-alive {keepalive}"
    server = _on_socket("gunicorn-gthread", workdir, settings, command, about)
    workers = _worker_pids(server.proc.pid)
    if len(workers) != 1:
        server.stop()
        raise RuntimeError(f"expected one gunicorn worker, found {workers}")
    server.sampled_pid = workers[0]
    return server


TARGETS: dict[str, Callable[[Path, Settings], RunningServer]] = {
    "microwsgi": start_microwsgi,
    "waitress": start_waitress,
    "gunicorn-gthread": start_gunicorn_gthread,
}


def unavailable(name: str) -> str | None:
    """Why target `name` cannot run on this machine (a Python package is missing), or None."""
    package = {"waitress": "waitress", "gunicorn-gthread": "gunicorn"}.get(name)
    if package is not None and importlib.util.find_spec(package) is None:
        return f"{package} is not installed (pip install {package})"
    return None


def start_target(name: str, workdir: Path, settings: Settings | None = None) -> RunningServer:
    """Start target `name` (a key of TARGETS) with `settings`; it is ready when this returns."""
    return TARGETS[name](workdir, settings or Settings())
