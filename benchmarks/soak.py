"""The soak: one server under mixed traffic for a while, measured, then checked on the way out.

`run_soak(server, seconds, mix)` opens the idle connections, runs the clients of
`soak_clients.py` for `seconds` and samples the server's RSS, open descriptors and threads
from /proc meanwhile. The keep-alive clients, whose latency is the figure that matters, run
in a process of their own, so that the other clients' work (hashing megabytes, hundreds of
sockets) never delays their measurements. Afterwards it asks for a fresh request on a fresh
connection (several tries), for an answer on every idle connection, and, with
`graceful=True`, checks SIGTERM: idle connections open and a slow request in flight, which
must be answered, then exit status 0. tests/soak/ calls `run_soak` and asserts on the
`SoakResult`.

    python -m benchmarks.soak --seconds 120 --targets microwsgi,waitress,gunicorn-gthread

runs the same soak against each target in turn (`soak_targets.py`) and prints the figures;
`--write` also puts them in `benchmarks/RESULTS.md`, in the section `soak_report.py` renders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.soak_clients import HOST, KINDS, REQUEST_TIMEOUT, Clients, Mix, Tally
from benchmarks.soak_targets import (
    TARGETS,
    ProcStats,
    RunningServer,
    context_switches,
    start_target,
    unavailable,
)
from benchmarks.wire import REPO_ROOT, cpu_seconds

__all__ = ["Graceful", "SoakResult", "main", "run_soak"]

SAMPLE_EVERY = 0.2
SERIES_EVERY = 10.0


@dataclass
class Graceful:
    """What SIGTERM did with idle connections open and a slow request in flight."""

    in_flight_answered: bool = False
    idle_closed: int = 0
    exit_status: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SoakResult:
    """Everything one soak measured and saw; `to_dict()` for JSON."""

    target: str
    description: str
    seconds: float
    mix: Mix
    kinds: dict[str, Tally]
    latency_ms: dict[str, float]
    baseline: ProcStats
    peak: ProcStats
    end: ProcStats
    rss_mib_series: list[tuple[float, float]]
    peak_client_connections: int
    idle_open_seconds: float
    cpu_seconds: float
    context_switches: tuple[int, int]
    fresh_request_ms: list[float]
    idle_still_open: int
    graceful: Graceful | None
    log_tracebacks: int

    @property
    def wrong(self) -> int:
        return sum(tally.wrong for tally in self.kinds.values())

    @property
    def lost(self) -> int:
        return sum(tally.lost for tally in self.kinds.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class _Sampler:
    """The server's /proc figures every SAMPLE_EVERY seconds: peaks, and RSS now and then."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.peak = server.sample()
        self.series: list[tuple[float, float]] = []

    async def run(self, stop: asyncio.Event) -> None:
        started, next_point = time.monotonic(), 0.0
        while not stop.is_set():
            stats = self.server.sample()
            pairs = zip(dataclasses.astuple(self.peak), dataclasses.astuple(stats), strict=True)
            self.peak = ProcStats(*(max(pair) for pair in pairs))
            elapsed = time.monotonic() - started
            if elapsed >= next_point:
                self.series.append((round(elapsed, 1), round(stats.rss_kib / 1024, 1)))
                next_point += SERIES_EVERY
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


async def _latency_clients(
    address: tuple[str, int], seconds: float, mix: Mix, seed: int
) -> tuple[Tally, list[float], int]:
    """Run the keep-alive clients in a process of their own; their tally and latencies."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "benchmarks.soak", "--latency-clients", f"{address[1]}"),
        *("--host", address[0], "--seconds", str(seconds), "--seed", str(seed)),
        *("--clients", str(mix.keepalive), "--pause", str(mix.pause)),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + REQUEST_TIMEOUT + 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return Tally(lost=1, notes=["the keep-alive clients never finished"]), [], 0
    if proc.returncode != 0:
        return Tally(lost=1, notes=[f"the keep-alive clients exited {proc.returncode}"]), [], 0
    found = json.loads(out)
    return Tally(**found["tally"]), found["latencies"], found["open_peak"]


async def _graceful(clients: Clients, server: RunningServer) -> Graceful:
    """SIGTERM with the idle connections open and a slow request in flight.

    The slow request's app has sent its first line and waits for the rest of the body, which
    is sent only once the server has closed every idle connection: the request is in flight
    for the whole shutdown, with no sleep to make it so.
    """
    result = Graceful()
    conn = await clients.connect()
    try:
        head = f"POST /slow HTTP/1.1\r\n{HOST}Content-Length: 16\r\n\r\n".encode()
        await conn.send(head + b"12345678")
        first = b""
        try:
            response = await asyncio.wait_for(conn.head(), 10.0)
            first = await asyncio.wait_for(conn.chunk(), 10.0)
            if response.status != 200 or first != b"started\n":
                result.notes.append(f"the slow request began {response.status} {first!r}")
        except asyncio.TimeoutError:
            result.notes.append("the app never started the slow request (body read first?)")
        server.send_signal(signal.SIGTERM)
        closed = await asyncio.gather(
            *(asyncio.wait_for(idle.closed_by_server(), 15.0) for idle in clients.idle),
            return_exceptions=True,
        )
        result.idle_closed = sum(1 for outcome in closed if outcome is True)
        await conn.send(b"abcdefgh")
        rest = await asyncio.wait_for(conn.chunk(), 15.0)
        last = await asyncio.wait_for(conn.chunk(), 15.0)
        result.in_flight_answered = (first, rest, last) == (b"started\n", b"done 16\n", b"")
        if not result.in_flight_answered:
            result.notes.append(f"the slow request ended {rest!r} {last!r}")
    except Exception as exc:
        result.notes.append(f"{type(exc).__name__}: {exc}")
    finally:
        clients.drop(conn)
    result.exit_status = await asyncio.to_thread(server.wait, 30.0)
    return result


async def _soak(
    server: RunningServer, seconds: float, mix: Mix, seed: int, graceful: bool
) -> SoakResult:
    clients = Clients(server.address, mix, seed)
    opening = time.monotonic()
    await clients.open_idle()
    idle_open_seconds = time.monotonic() - opening
    sampler = _Sampler(server)
    baseline = sampler.peak
    pid = server.sampled_pid
    cpu_before, switches_before = cpu_seconds([pid]), context_switches(pid)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    started = time.monotonic()
    others = [kind for kind in KINDS if kind not in ("keepalive", "idle")]
    (tally, latencies, latency_peak), _ = await asyncio.gather(
        _latency_clients(server.address, seconds, mix, seed),
        clients.run(others, seconds),
    )
    stop.set()
    await sampling
    elapsed = time.monotonic() - started
    cpu = cpu_seconds([pid]) - cpu_before
    switches = context_switches(pid)
    end = server.sample()
    clients.tallies["keepalive"] = tally
    fresh = await clients.fresh_request_ms()
    idle_ok = await clients.check_idle()
    graceful_result = await _graceful(clients, server) if graceful else None
    for conn in clients.idle:
        clients.drop(conn)
    latencies_ms = [value * 1000 for value in latencies]
    return SoakResult(
        target=server.name,
        description=server.description,
        seconds=round(elapsed, 1),
        mix=mix,
        kinds=clients.tallies,
        latency_ms={
            "p50": _percentile(latencies_ms, 0.50),
            "p99": _percentile(latencies_ms, 0.99),
            "max": max(latencies_ms, default=0.0),
        },
        baseline=baseline,
        peak=sampler.peak,
        end=end,
        rss_mib_series=sampler.series,
        peak_client_connections=clients.open_peak + latency_peak,
        idle_open_seconds=round(idle_open_seconds, 1),
        cpu_seconds=round(cpu, 2),
        context_switches=(switches[0] - switches_before[0], switches[1] - switches_before[1]),
        fresh_request_ms=fresh,
        idle_still_open=idle_ok,
        graceful=graceful_result,
        log_tracebacks=server.log().count("Traceback"),
    )


def run_soak(
    server: RunningServer,
    seconds: float,
    mix: Mix | None = None,
    *,
    seed: int = 0,
    graceful: bool = False,
) -> SoakResult:
    """Soak `server` for `seconds` with `mix`; with `graceful`, end with the SIGTERM check."""
    return asyncio.run(_soak(server, seconds, mix or Mix(), seed, graceful))


# -- the command line ------------------------------------------------------------------------


def _run_latency_clients(args: argparse.Namespace) -> int:
    """The keep-alive clients' own process: run them, print their tally as JSON."""
    mix = Mix(keepalive=args.clients, pause=args.pause)
    clients = Clients((args.host, args.latency_clients), mix, args.seed)
    asyncio.run(clients.run(["keepalive"], args.seconds))
    tally = clients.tallies["keepalive"]
    print(
        json.dumps(
            {"tally": asdict(tally), "latencies": clients.latencies, "open_peak": clients.open_peak}
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description="Mixed-traffic soak against each target in turn (wrap it in flock).",
    )
    parser.add_argument("--targets", default="microwsgi,waitress,gunicorn-gthread")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stress", action="store_true", help="no think time: every client flat out"
    )
    parser.add_argument("--write", action="store_true", help="put the figures in RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    # The keep-alive clients' own process (started by run_soak, not by hand).
    parser.add_argument("--latency-clients", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--pause", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.soak_report import render, write_section

    args = _parser().parse_args(argv)
    if args.latency_clients is not None:
        return _run_latency_clients(args)
    names = [name for name in args.targets.split(",") if name]
    unknown = set(names) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}; known: {sorted(TARGETS)}")
    mix = Mix(pause=0.0, heavy_pause=0.0) if args.stress else Mix()
    results: list[SoakResult] = []
    skipped = {name: why for name in names if (why := unavailable(name)) is not None}
    for name in (name for name in names if name not in skipped):
        print(f"soaking {name} for {args.seconds:g} s ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
            server = start_target(name, Path(workdir))
            try:
                results.append(run_soak(server, args.seconds, mix, seed=args.seed, graceful=True))
            finally:
                server.stop()
    shown = list(sys.argv[1:] if argv is None else argv)
    markdown = render(results, skipped, ["python", "-m", "benchmarks.soak", *shown])
    print(markdown)
    if args.write:
        write_section(markdown)
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
