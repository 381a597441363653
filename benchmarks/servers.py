"""Section 5, servers side by side: microwsgi's engine against the servers WSGI apps run on.

Every server runs the same application (``apps.py``: bare WSGI, or microwsgi's) in one worker
process with 8 threads where it has threads, on 127.0.0.1, and wrk loads each in turn with
keep-alive connections, round after round (the order rotates); the median of the rounds is
kept. The servers: microwsgi's development server, gunicorn with microwsgi's worker
(``-k microwsgi.workers.Worker``), gunicorn's gthread worker, waitress and granian (the last
two from the ``bench`` extra; a server whose package is missing is skipped, with the reason).
Besides requests per second, every run records the CPU time the server's processes spent per
request (from /proc: all of them, gunicorn's arbiter too) and wrk's p99 latency.

Then, on the bare app's ``/hello``: the p99 at 256 connections; two worker processes against
one at 16 connections, with the cores the server and wrk kept busy together (wrk shares the
two cores of the machine it was written on, so two workers cannot double anything: the
report computes the ceiling that leaves); and the soak's mixed traffic (``soak.py``) against the
development server and waitress, for the small keep-alive requests' latency.

Servers are started in their own session on a socket bound here (granian binds the port it is
given: it takes no socket), waited on with bounded timeouts and always stopped.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.wire import (
    PATHS,
    READY_TIMEOUT,
    REPO_ROOT,
    _listening_socket,
    _stop,
    _wait_ready,
    cpu_seconds,
    run_wrk,
)

__all__ = ["SERVERS", "run_servers"]

THREADS = 8  # every server's worker threads, as the production settings compare them
WRK_THREADS = 1  # one wrk thread leaves the servers a core of the two

Command = Callable[[str, int, int, int], list[str]]  # (app, workers, fd, port) -> argv


@dataclass(frozen=True)
class Server:
    """How to run one server: its label, the package it needs, its command line."""

    label: str
    package: str | None
    command: Command
    takes_socket: bool = True  # serves the socket we bind (else it binds the port itself)
    workers: bool = True  # has a number of worker processes


_DEV = (
    "import socket, sys; from benchmarks.apps import build_app; "
    "from microwsgi.server import serve; "
    "serve(build_app(sys.argv[2]), sock=socket.socket(fileno=int(sys.argv[1])), "
    f"threads={THREADS}, access_log=False)"
)
_WAITRESS = (
    "import socket, sys, waitress; from benchmarks.apps import build_app; "
    "waitress.serve(build_app(sys.argv[2]), sockets=[socket.socket(fileno=int(sys.argv[1]))], "
    f"threads={THREADS}, connection_limit=1000, _quiet=True)"
)


def _dev(app: str, workers: int, fd: int, port: int) -> list[str]:
    return [sys.executable, "-c", _DEV, str(fd), app]


def _gunicorn(worker_class: str) -> Command:
    def command(app: str, workers: int, fd: int, port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--chdir", str(REPO_ROOT)),
            *("--log-level", "warning", "--graceful-timeout", "3", "-k", worker_class),
            *("-w", str(workers), "--threads", str(THREADS), f'benchmarks.apps:build_app("{app}")'),
        ]

    return command


def _waitress(app: str, workers: int, fd: int, port: int) -> list[str]:
    return [sys.executable, "-c", _WAITRESS, str(fd), app]


def _granian(app: str, workers: int, fd: int, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(workers)),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        *("--factory", f"benchmarks.apps:build_{app}"),
    ]


SERVERS: dict[str, Server] = {
    "microwsgi": Server("microwsgi dev server", None, _dev, workers=False),
    "gunicorn-microwsgi": Server("gunicorn + microwsgi worker", "gunicorn", _gunicorn(
        "microwsgi.workers.Worker"
    )),
    "gunicorn-gthread": Server("gunicorn gthread", "gunicorn", _gunicorn("gthread")),
    "waitress": Server("waitress", "waitress", _waitress, workers=False),
    "granian": Server("granian", "granian", _granian, takes_socket=False),
}  # fmt: skip
OURS = ("microwsgi", "gunicorn-microwsgi")
# How each server is configured, for the report.
SETTINGS = {
    "microwsgi": f"`serve(app, threads={THREADS}, access_log=False)`",
    "gunicorn-microwsgi": f"`gunicorn -w N --threads {THREADS} -k microwsgi.workers.Worker`",
    "gunicorn-gthread": f"`gunicorn -w N --threads {THREADS} -k gthread`",
    "waitress": f"`--threads={THREADS} --connection-limit=1000`",
    "granian": "`granian --interface wsgi --workers N`",
}


def unavailable(name: str) -> str | None:
    """Why server `name` cannot run here (its Python package is missing), or None."""
    package = SERVERS[name].package
    if package is not None and importlib.util.find_spec(package) is None:
        return f"{package} is not installed (pip install -e '.[bench]')"
    return None


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc (gone processes are left out)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            for child in task.read_text().split():
                found += process_tree(int(child))
    return found


@dataclass
class Running:
    """A started server: where it listens and its process (the root of its tree)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(name: str, app: str, workers: int = 1) -> Iterator[Running]:
    """Run server `name` with benchmark app `app`; yield it once it answers; always stop it."""
    server = SERVERS[name]
    sock = _listening_socket() if server.takes_socket else None
    port = sock.getsockname()[1] if sock is not None else _free_port()
    fd = sock.fileno() if sock is not None else -1
    proc = subprocess.Popen(
        server.command(app, workers, fd, port),
        cwd=REPO_ROOT,
        pass_fds=(fd,) if sock is not None else (),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if sock is not None:
            sock.close()  # the server holds its own copy of the descriptor
        _wait_ready(port, PATHS["static JSON"], proc, READY_TIMEOUT)
        yield Running(name, port, proc)
    finally:
        if sock is not None:
            sock.close()
        _stop(proc)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk, once it has been waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(server: Running, path: str, duration: int, connections: int) -> dict[str, Any]:
    """One wrk run with its latency percentiles, the server's CPU time per request, wrk's, and
    how many cores the two kept busy together."""
    before, wrk_before = cpu_seconds(process_tree(server.proc.pid)), _children_cpu()
    url = f"http://127.0.0.1:{server.port}{path}"
    result = run_wrk(url, duration, connections, WRK_THREADS, latency=True)
    spent = cpu_seconds(process_tree(server.proc.pid)) - before
    wrk_spent = _children_cpu() - wrk_before
    requests = max(1, result.requests)
    return {
        "requests_per_sec": result.requests_per_sec,
        "cpu_us_per_request": spent / requests * 1e6,
        "wrk_cpu_us_per_request": wrk_spent / requests * 1e6,
        "cores_busy": (spent + wrk_spent) / duration,
        "p99_ms": result.latency_p99_ms,
        "socket_errors": result.socket_errors,
        "non_2xx": result.non_2xx,
    }


def _median_row(runs: list[dict[str, Any]], **keys: Any) -> dict[str, Any]:
    """The median of each figure over the rounds (errors summed), with the rounds' req/s."""
    p99s = [run["p99_ms"] for run in runs if run["p99_ms"] is not None]
    return {
        **keys,
        "requests_per_sec": statistics.median(run["requests_per_sec"] for run in runs),
        "rounds": [round(run["requests_per_sec"]) for run in runs],
        "cpu_us_per_request": statistics.median(run["cpu_us_per_request"] for run in runs),
        "wrk_cpu_us_per_request": statistics.median(run["wrk_cpu_us_per_request"] for run in runs),
        "cores_busy": statistics.median(run["cores_busy"] for run in runs),
        "p99_ms": statistics.median(p99s) if p99s else None,
        "socket_errors": sum(run["socket_errors"] for run in runs),
        "non_2xx": sum(run["non_2xx"] for run in runs),
    }


def _interleaved(
    started: dict[str, Running], path: str, duration: int, connections: int, rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """`rounds` runs of each started server, the order rotating from round to round."""
    names = list(started)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            runs[name].append(measure(started[name], path, duration, connections))
    return runs


def run_keepalive(
    started: dict[tuple[str, str], Running],
    cases: Sequence[str],
    duration: int,
    rounds: int,
) -> list[dict[str, Any]]:
    """Every started server on its app and each case at 8 connections, rounds interleaved."""
    rows = []
    for app in dict.fromkeys(app for _, app in started):
        on_app = {name: server for (name, of), server in started.items() if of == app}
        for case in cases:
            runs = _interleaved(on_app, PATHS[case], duration, 8, rounds)
            rows += [_median_row(runs[name], server=name, app=app, case=case) for name in on_app]
    return rows


def run_many(
    started: dict[str, Running], duration: int, rounds: int, connections: int
) -> list[dict[str, Any]]:
    """The bare app's /hello at many connections."""
    runs = _interleaved(started, PATHS["static JSON"], duration, connections, rounds)
    return [_median_row(runs[name], server=name) for name in started]


def run_workers(
    started: dict[str, Running], stack: ExitStack, duration: int, rounds: int, connections: int
) -> list[dict[str, Any]]:
    """One worker process (the servers `started`) against two, the bare app's /hello."""
    rows = []
    for name, one in started.items():
        two = stack.enter_context(running(name, "bare", 2))
        pair = {"1": one, "2": two}
        runs = _interleaved(pair, PATHS["static JSON"], duration, connections, rounds)
        rows += [_median_row(runs[w], server=name, workers=int(w)) for w in pair]
    return rows


def run_mixed(seconds: float, quick: bool) -> list[dict[str, Any]]:
    """The soak's mix, for `seconds`, against microwsgi's dev server and waitress in turn."""
    from benchmarks.soak import run_soak
    from benchmarks.soak_clients import Mix
    from benchmarks.soak_targets import start_target
    from benchmarks.soak_targets import unavailable as soak_unavailable

    mix = Mix(idle=20, max_upload=1 << 20, max_download=1 << 20) if quick else Mix()
    rows = []
    for target in ("microwsgi", "waitress"):
        if soak_unavailable(target) is not None:
            continue
        with tempfile.TemporaryDirectory(prefix="servers-soak-") as workdir:
            server = start_target(target, Path(workdir))
            try:
                result = run_soak(server, seconds, mix)
            finally:
                server.stop()
        keepalive = result.kinds["keepalive"]
        rows.append(
            {
                "target": target,
                "description": result.description,
                "p50_ms": result.latency_ms["p50"],
                "p99_ms": result.latency_ms["p99"],
                "answers": keepalive.ok,
                "wrong": result.wrong,
                "lost": result.lost,
            }
        )
    return rows


def run_servers(
    names: Iterable[str] = SERVERS,
    apps: Sequence[str] = ("bare", "microwsgi"),
    cases: Sequence[str] = ("static JSON", "params + query"),
    *,
    duration: int = 3,
    rounds: int = 3,
    many: int = 256,
    soak_seconds: float = 30.0,
    quick: bool = False,
) -> dict[str, Any]:
    """Section 5: every figure of the servers side by side (see the module docstring)."""
    skipped = {name: why for name in names if (why := unavailable(name)) is not None}
    available = [name for name in names if name not in skipped]
    with ExitStack() as stack:
        started = {
            (name, app): stack.enter_context(running(name, app))
            for app in apps
            for name in available
        }
        _progress("  keep-alive, 8 connections ...")
        keepalive = run_keepalive(started, cases, duration, rounds)
        bare = {name: server for (name, app), server in started.items() if app == "bare"}
        _progress(f"  {many} connections ...")
        many_rows = run_many(bare, duration, rounds, many)
        _progress("  -w 2 against -w 1, 16 connections ...")
        with_workers = {name: bare[name] for name in bare if SERVERS[name].workers}
        workers = run_workers(with_workers, stack, duration, rounds, 16)
    _progress("  the soak's mixed traffic ...")
    mixed = run_mixed(soak_seconds, quick) if soak_seconds > 0 else []
    return {
        "duration": duration,
        "rounds": rounds,
        "wrk": f"wrk -t{WRK_THREADS} -cN -d{duration}s --timeout 5s --latency URL",
        "servers": {name: SERVERS[name].label for name in available},
        "settings": {name: SETTINGS[name] for name in available},
        "keepalive": keepalive,
        "many": {"connections": many, "rows": many_rows},
        "workers": {"connections": 16, "rows": workers},
        "cores": os.cpu_count() or 1,
        "mixed": {"seconds": soak_seconds, "rows": mixed},
        "skipped": skipped,
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
