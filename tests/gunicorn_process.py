"""A real gunicorn process for the tests: started, waited for, signalled, stopped, always.

Shared by the end-to-end tests (tests/e2e/) and the server suites that also run under gunicorn
with microwsgi's worker (tests/server/). Every wait is bounded; every process started is
stopped by whoever started it, in its own process group so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tools import require_extra

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
# gunicorn's defaults and no control socket (tests/e2e/plain.conf.py says why).
PLAIN_CONFIG = REPO / "tests" / "e2e" / "plain.conf.py"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it is true; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def open_files(pid: int) -> dict[Path, str]:
    """What each open descriptor of process `pid` points at, by its /proc path. A descriptor
    closed between the listing and its readlink is left out: a serving process opens and
    closes sockets all the time, and the race showed up in CI as a FileNotFoundError."""
    targets = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            targets[fd] = os.readlink(fd)
    return targets


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
class Gunicorn:
    """A real gunicorn started with the shipped deploy/gunicorn.conf.py, overridden for the test.

    `options` are more settings on the command line (they win over the config file), `binds`
    its listeners, `config` another config file (None: none), `launcher` a program that starts
    gunicorn for us (systemd-socket-activate). Logs go to `logdir`.
    """

    app: str
    chdir: Path
    logdir: Path
    worker_class: str | None = "sync"  # None: as the config file says
    workers: int = 1
    threads: int | None = 1
    env: dict[str, str] = field(default_factory=dict)
    options: Sequence[str] = ()
    binds: Sequence[str] = ("127.0.0.1:0",)
    config: Path | None = DEPLOY / "gunicorn.conf.py"
    launcher: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    addresses: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Asked for on creation, before a fixture keeps the instance to share or to stop.
        require_extra("gunicorn.app.wsgiapp")  # what `python -m gunicorn` runs

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
        config = ["-c", str(self.config)] if self.config is not None else []
        # Port 0: the kernel picks a free port and gunicorn logs it, so no other process can
        # take the port between choosing and binding it.
        binds = [option for bind in self.binds for option in ("--bind", bind)]
        return [
            *self.launcher, sys.executable, "-m", "gunicorn", *config, *binds,
            "--workers", str(self.workers),
            *(["--worker-class", self.worker_class] if self.worker_class else []),
            *(["--threads", str(self.threads)] if self.threads else []),
            "--graceful-timeout", "10",
            "--error-logfile", str(self.error_log),
            "--access-logfile", str(self.access_log),
            "--chdir", str(self.chdir),
            *self.options,
            self.app,
        ]  # fmt: skip

    def start(self) -> Gunicorn:
        self.spawn()
        self.wait_booted()
        if self.port:
            wait_until(lambda: accepts_connections(self.port), START_TIMEOUT, "gunicorn's socket")
        return self

    def environ(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        # The code under test is this checkout, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def spawn(self) -> None:
        """Start the process; `wait_booted` waits for it to serve."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        env = self.environ()
        with self.stderr_log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.command(),
                env=env,
                cwd=self.logdir,  # no stray ./gunicorn.conf.py is read
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: see stop_group
            )

    def run_to_exit(self) -> subprocess.CompletedProcess[str]:
        """Run a gunicorn expected to stop by itself (a refused configuration)."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            self.command(),
            env=self.environ(),
            cwd=self.logdir,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )

    def wait_booted(self) -> None:
        wait_until(self._booted, START_TIMEOUT, f"gunicorn {self.app} to boot")

    def log(self) -> str:
        return self.error_log.read_text() if self.error_log.exists() else ""

    def stderr(self) -> str:
        return self.stderr_log.read_text()

    def _booted(self) -> bool:
        assert self.proc is not None
        log = self.log()
        if self.proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{log}{self.stderr()}")
        listening = re.search(r"Listening at: (\S+) \(", log)
        if listening:
            self.addresses = listening.group(1).split(",")
            tcp = re.search(r"http://127\.0\.0\.1:(\d+)", listening.group(1))
            self.port = int(tcp.group(1)) if tcp else 0
        else:  # a log level above info: only a port given in advance tells where it listens
            fixed = [bind for bind in self.binds if re.fullmatch(r"127\.0\.0\.1:[1-9]\d*", bind)]
            if not fixed or not accepts_connections(int(fixed[0].split(":")[1])):
                return False
            self.port = int(fixed[0].split(":")[1])
        return len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        """The master's worker processes now (its children, from /proc)."""
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def wait_for_log(self, text: str, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        """Wait until the error log holds `text` at least `count` times."""
        wait_until(lambda: self.log().count(text) >= count, timeout, f"{text!r} in the error log")

    def send_signal(self, sig: int) -> None:
        """To the master."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """SIGTERM: graceful (requests in flight finish); SIGQUIT: quick."""
        assert self.proc is not None
        return stop_group(self.proc, sig)


def stop_all(servers: Sequence[Gunicorn]) -> None:
    """Stop several at once: all are asked first, so their graceful stops overlap."""
    running = [server for server in servers if server.proc is not None]
    for server in running:
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGTERM)
    for server in running:
        server.stop()
