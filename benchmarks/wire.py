"""Over-the-wire benchmarks: each framework under gunicorn, loaded by wrk on loopback (section 3).

gunicorn gets its listening socket from us (``--bind fd://N``): we bind port 0 ourselves, so no
port is ever guessed or raced for. Every gunicorn is started in its own process group, waited on
with bounded timeouts and always killed, even when wrk or the readiness check fails.

Besides requests per second (wall clock, so disturbed by anything else running on a shared
machine), each run records the CPU time the gunicorn worker spent per request, read from
/proc: a steadier basis for comparing frameworks when the machine is noisy.

gunicorn's sync worker answers each request with ``Connection: close`` (one request per
connection), so wrk reconnects for every request there; the gthread worker keeps connections
alive, which is the setting closest to production behind a proxy.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.apps import FRAMEWORKS, unavailable_reason

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 20.0
WRK = os.environ.get("WRK", "/usr/bin/wrk")

WORKERS = {
    "sync": ["--worker-class", "sync", "--workers", "1"],
    "gthread": ["--worker-class", "gthread", "--workers", "1", "--threads", "4"],
}
PATHS = {"static JSON": "/hello", "params + query": "/users/admins/general?n=3"}


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reported."""

    requests_per_sec: float
    requests: int
    socket_errors: int
    non_2xx: int
    latency_avg: str
    latency_p99_ms: float | None = None  # with --latency only


def wrk_path() -> str | None:
    """The wrk executable, or None when it is not installed."""
    if os.access(WRK, os.X_OK):
        return WRK
    return shutil.which("wrk")


_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_MS_PER_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> WrkResult:
    """Parse wrk's text report (its summary lines are stable across 4.x)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    errors = _SOCKET_ERRORS.search(output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = re.search(r"Latency\s+(\S+)", output)
    p99 = _P99.search(output)  # the distribution --latency adds
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        requests=int(total.group(1)),
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        latency_avg=latency.group(1) if latency else "?",
        latency_p99_ms=float(p99.group(1)) * _MS_PER_UNIT[p99.group(2)] if p99 else None,
    )


def run_wrk(
    url: str, duration: int, connections: int, threads: int, *, latency: bool = False
) -> WrkResult:
    """One wrk run against ``url`` (`latency`: with its percentiles); wrk's own duration plus
    a margin bounds it."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    command += ["--latency", url] if latency else [url]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def _worker_pids(master: int) -> list[int]:
    """The gunicorn worker processes (children of the master), from /proc."""
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").glob("*/children"):
        with suppress(OSError):
            children += [int(pid) for pid in task.read_text().split()]
    return children


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of ``pids`` (all their threads), from /proc/PID/stat."""
    ticks = 0
    for pid in pids:
        with suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            # Fields after the parenthesised command name; utime and stime are 14 and 15.
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Served:
    """A running gunicorn: where it listens and which processes do the work."""

    port: int
    workers: tuple[int, ...]


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``path`` until the server answers 200; fail if it exits or the time runs out."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
            last_error = f"status {response.status}"
        except OSError as exc:
            last_error = str(exc)
        finally:
            conn.close()
        time.sleep(0.05)
    raise RuntimeError(f"the server was not ready after {timeout:.0f}s: {last_error}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def gunicorn(framework: str, worker: str) -> Iterator[Served]:
    """Run ``framework``'s benchmark app under gunicorn; yield where; always stop it."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"fd://{sock.fileno()}",
        "--chdir",
        str(REPO_ROOT),
        "--log-level",
        "warning",
        "--graceful-timeout",
        "3",
        *WORKERS[worker],
        f'benchmarks.apps:build_app("{framework}")',
    ]
    proc = subprocess.Popen(
        command, pass_fds=(sock.fileno(),), start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        sock.close()  # gunicorn holds its own copy of the descriptor
        _wait_ready(port, "/hello", proc, READY_TIMEOUT)
        yield Served(port, tuple(_worker_pids(proc.pid)))
    finally:
        sock.close()
        _stop(proc)


def run_wire(
    frameworks: Iterable[str] = FRAMEWORKS,
    workers: Iterable[str] = ("sync", "gthread"),
    cases: Iterable[str] = ("static JSON", "params + query"),
    duration: int = 3,
    rounds: int = 3,
    connections: int = 8,
    threads: int | None = None,
) -> dict[str, Any]:
    """Section 3: requests/s per framework, worker class and case; ratios vs bare WSGI.

    All frameworks' gunicorns for one worker class run side by side (idle ones cost nothing),
    and wrk runs are interleaved across them round by round; the best round is kept.
    """
    if threads is None:
        # wrk shares the machine with gunicorn: leave the server at least one core.
        threads = max(1, min(2, (os.cpu_count() or 2) - 1))
    skipped = {}
    available = []
    for framework in frameworks:
        reason = unavailable_reason(framework)
        if reason is None:
            available.append(framework)
        else:
            skipped[framework] = reason
    best: dict[tuple[str, str, str], WrkResult] = {}
    cpu_per_request: dict[tuple[str, str, str], float] = {}
    for worker in workers:
        with ExitStack() as stack:
            served = {fw: stack.enter_context(gunicorn(fw, worker)) for fw in available}
            for r in range(rounds):
                shift = r % max(1, len(available))
                for framework in available[shift:] + available[:shift]:
                    for case in cases:
                        server = served[framework]
                        url = f"http://127.0.0.1:{server.port}{PATHS[case]}"
                        cpu_before = cpu_seconds(server.workers)
                        result = run_wrk(url, duration, connections, threads)
                        cpu = (cpu_seconds(server.workers) - cpu_before) / max(1, result.requests)
                        key = (worker, case, framework)
                        cpu_per_request[key] = min(cpu_per_request.get(key, cpu), cpu)
                        if key not in best or result.requests_per_sec > best[key].requests_per_sec:
                            best[key] = result
    rows = []
    for (worker, case, framework), result in best.items():
        bare = best.get((worker, case, "bare"))
        cpu = cpu_per_request[(worker, case, framework)]
        bare_cpu = cpu_per_request.get((worker, case, "bare"))
        rows.append(
            {
                "worker": worker,
                "case": case,
                "framework": framework,
                "requests_per_sec": result.requests_per_sec,
                "requests": result.requests,
                "socket_errors": result.socket_errors,
                "non_2xx": result.non_2xx,
                "latency_avg": result.latency_avg,
                "vs_bare": result.requests_per_sec / bare.requests_per_sec if bare else None,
                "cpu_us_per_request": cpu * 1e6,
                "cpu_vs_bare": bare_cpu / cpu if bare_cpu and cpu else None,
            }
        )
    rows.sort(key=lambda row: (row["worker"], row["case"]))
    return {
        "duration": duration,
        "rounds": rounds,
        "connections": connections,
        "threads": threads,
        "command": f"wrk -t{threads} -c{connections} -d{duration}s --timeout 5s URL",
        "rows": rows,
        "skipped": skipped,
    }
