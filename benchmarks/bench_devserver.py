"""Development servers side by side: microwsgi's vs wsgiref.simple_server vs werkzeug.

One bare WSGI app answering a small JSON body is served in turn by each server (a fresh
subprocess on 127.0.0.1) and loaded with wrk at 8 keep-alive connections. Then microwsgi's
server holds 1,000 idle keep-alive connections while its RSS, thread count and the latency
of one new `GET /hello` are recorded.

    python benchmarks/bench_devserver.py --duration 10

`main(argv)` returns (and prints as JSON) a dict of results; the suite runner calls it.
Needs wrk on PATH (Debian package `wrk`). The targets: >= 3x wsgiref and >= 4x werkzeug
requests/sec with zero socket errors, and < 60 MB RSS with 1,000 idle connections. The latest
figures, with the machine they were measured on, are in benchmarks/RESULTS.md (`python -m
benchmarks`); the machine is shared and noisy, so compare the ratios of one run, not figures
across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"message": "Hello, World!"}'


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The app every server runs: a fixed small JSON answer."""
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]


SERVERS = {
    "microwsgi": "from microwsgi.server import serve; serve(app, '127.0.0.1', {port})",
    "wsgiref": (
        "from wsgiref.simple_server import make_server; "
        "make_server('127.0.0.1', {port}, app).serve_forever()"
    ),
    "werkzeug": (
        "from werkzeug.serving import run_simple; "
        "run_simple('127.0.0.1', {port}, app, threaded=True)"
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


@contextlib.contextmanager
def running(name: str, extra: str = "") -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    code = (
        f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'benchmarks')!r}]; "
        f"from bench_devserver import app; {extra}" + SERVERS[name].format(port=port)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_listening(port, proc)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(port: int, duration: int, connections: int = 8) -> dict[str, Any]:
    command = [
        "wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s",
        f"http://127.0.0.1:{port}/hello",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "command": " ".join(command),
        "requests_per_sec": rps,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def idle_connections(count: int = 1000) -> dict[str, Any]:
    """RSS, peak RSS and threads of microwsgi holding `count` idle keep-alive connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200), hard))
    request = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"
    with running("microwsgi", "import microwsgi.server as s; ") as (port, proc):
        before = proc_status(proc.pid)
        clients = []
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), 5)
                sock.sendall(request)
                clients.append(sock)
            for sock in clients:
                if BODY not in sock.recv(4096):
                    raise RuntimeError("idle client got a wrong answer")
            time.sleep(0.5)
            with socket.create_connection(("127.0.0.1", port), 5) as probe:
                start = time.perf_counter()
                probe.sendall(request)
                answer = probe.recv(4096)
                latency_ms = (time.perf_counter() - start) * 1000
            held = proc_status(proc.pid)
        finally:
            for sock in clients:
                sock.close()
    return {
        "idle_connections": count,
        "rss_mb_before": round(before["VmRSS"] / 1024, 1),
        "rss_mb": round(held["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(held["VmHWM"] / 1024, 1),
        "threads": held["Threads"],
        "new_request_ms": round(latency_ms, 2),
        "new_request_ok": answer.startswith(b"HTTP/1.1 200"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--skip-idle", action="store_true", help="skip the 1,000-idle run")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench_devserver: wrk is not installed (apt-get install wrk)")
    results: dict[str, Any] = {"duration_s": args.duration, "connections": 8, "servers": {}}
    for name in SERVERS:
        with running(name) as (port, _):
            wrk(port, 1)  # warm up: imports, lazily started threads, caches
            results["servers"][name] = wrk(port, args.duration)
    rates = {name: r["requests_per_sec"] for name, r in results["servers"].items()}
    results["ratio_vs_wsgiref"] = round(rates["microwsgi"] / rates["wsgiref"], 2)
    results["ratio_vs_werkzeug"] = round(rates["microwsgi"] / rates["werkzeug"], 2)
    if not args.skip_idle:
        results["idle"] = idle_connections()
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
