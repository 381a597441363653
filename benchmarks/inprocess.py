"""In-process benchmarks: apps called directly with a prebuilt environ (sections 1 and 2).

The loop does what the thinnest WSGI server must do for each request and nothing more: a fresh
copy of the prebuilt environ (frameworks store things in it), a fresh ``wsgi.input`` for POST,
the call, the body iterable consumed, ``close()`` called. Every app's answer is checked before
it is timed, since a benchmark of a wrong answer is worthless.

Timing is timeit-style: each (case, app) is calibrated to a target round time, rounds are
interleaved across apps (rotating the order each round) so machine drift hits all alike, the
collector is paused inside a round, and the best round is kept (the median is reported too).
"""

from __future__ import annotations

import gc
import io
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.apps import FRAMEWORKS, WSGIApp, build_app, unavailable_reason

# Bottle matches dynamic routes through regexes of ~100 routes each, compiled on the first
# request: at 10,000 routes that first request alone takes close to a minute here.
SCALE_CAPS = {"bottle": 1_000}
SCALE_CAP_REASONS = {"bottle": "its first request compiles the route regexes for ~50 s"}

POST_BODY = json.dumps({"name": "microwsgi", "items": [1, 2, 3], "ok": True}).encode()


@dataclass(frozen=True)
class Case:
    """One measured request and the JSON every app must answer it with."""

    name: str
    method: str
    path: str
    query: str
    body: bytes | None
    expected: Any


CASES = (
    Case("static JSON", "GET", "/hello", "", None, {"message": "Hello, World!"}),
    Case(
        "params + query",
        "GET",
        "/users/admins/general",
        "n=3",
        None,
        {"group": "admins", "channel": "general", "n": "3"},
    ),
    Case("JSON POST", "POST", "/echo", "", POST_BODY, json.loads(POST_BODY)),
    Case("typed param", "GET", "/items/42", "", None, {"id": 42}),
    Case("grouped route", "GET", "/api/v2/notes/n-7", "", None, {"note": "n-7"}),
)
CASES_BY_NAME = {case.name: case for case in CASES}


def make_environ(case: Case) -> dict[str, Any]:
    """A complete PEP 3333 environ for ``case``, as a real server would build it."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": case.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": case.path,
        "QUERY_STRING": case.query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "54321",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "microwsgi-bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "HTTP_CONNECTION": "keep-alive",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if case.body is not None:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(case.body))
    return environ


def _write(data: bytes) -> None:
    """The ``write()`` callable; no benchmarked app uses it."""


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def call_once(app: WSGIApp, case: Case) -> tuple[str, dict[str, str], bytes]:
    """Call ``app`` for ``case`` once; return (status, headers, body)."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = {name.lower(): value for name, value in headers}
        return _write

    environ = make_environ(case)
    if case.body is not None:
        environ["wsgi.input"] = io.BytesIO(case.body)
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured.get("status", ""), captured.get("headers", {}), body


def verify(app: WSGIApp, case: Case) -> None:
    """Raise AssertionError unless ``app`` answers ``case`` with 200 and the expected JSON."""
    status, headers, body = call_once(app, case)
    if not status.startswith("200"):
        raise AssertionError(f"{case.name}: status {status!r}, body {body[:200]!r}")
    content_type = headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise AssertionError(f"{case.name}: content-type {content_type!r}")
    got = json.loads(body)
    if got != case.expected:
        raise AssertionError(f"{case.name}: answered {got!r}, expected {case.expected!r}")
    length = headers.get("content-length")
    if length is not None and int(length) != len(body):
        raise AssertionError(f"{case.name}: content-length {length} but {len(body)} bytes")


def _loop(app: WSGIApp, base: dict[str, Any], body: bytes | None, n: int) -> int:
    """Serve ``n`` requests; return the elapsed nanoseconds."""
    copy = base.copy
    start_response = _start_response
    bytes_io = io.BytesIO
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(n):
            environ = copy()
            if body is not None:
                environ["wsgi.input"] = bytes_io(body)
            result = app(environ, start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def null_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The harness alone: what every measurement includes whatever the framework."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


def calibrate(app: WSGIApp, case: Case, round_time: float) -> int:
    """Calls per round so that one round takes about ``round_time`` seconds."""
    base = make_environ(case)
    n = 1
    while True:
        elapsed = _loop(app, base, case.body, n)
        if elapsed >= round_time * 1e9 / 10 or n >= 10_000_000:
            break
        n *= 4
    per_call = max(elapsed / n, 1.0)
    return max(1, int(round_time * 1e9 / per_call))


@dataclass
class Timing:
    """Per-call nanoseconds of every round for one (app, case)."""

    label: str
    rounds_ns: list[float]

    @property
    def best_ns(self) -> float:
        return min(self.rounds_ns)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.rounds_ns)


def measure(
    apps: dict[str, WSGIApp], case: Case, rounds: int, round_time: float
) -> dict[str, Timing]:
    """Time every app on ``case``, rounds interleaved across apps, rotating the order."""
    base = make_environ(case)
    plan = {label: calibrate(app, case, round_time) for label, app in apps.items()}
    timings = {label: Timing(label, []) for label in apps}
    labels = list(apps)
    for r in range(rounds):
        gc.collect()
        shift = r % len(labels)
        for label in labels[shift:] + labels[:shift]:
            n = plan[label]
            timings[label].rounds_ns.append(_loop(apps[label], base, case.body, n) / n)
    return timings


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def build_apps(
    frameworks: Iterable[str], n_routes: int, skipped: dict[str, str]
) -> dict[str, WSGIApp]:
    """Build and return the importable frameworks' apps; record the others in ``skipped``."""
    apps = {}
    for framework in frameworks:
        reason = unavailable_reason(framework)
        if reason is not None:
            skipped[framework] = reason
            continue
        apps[framework] = build_app(framework, n_routes)
    return apps


def run_dispatch(
    frameworks: Iterable[str] = FRAMEWORKS,
    rounds: int = 7,
    round_time: float = 0.2,
    n_routes: int = 100,
) -> dict[str, Any]:
    """Section 1: every framework, every case; ratios vs bare WSGI and vs Falcon (best round)."""
    skipped: dict[str, str] = {}
    apps = build_apps(frameworks, n_routes, skipped)
    harness = measure({"harness": null_app}, CASES[0], max(3, rounds // 2), round_time)
    rows = []
    for case in CASES:
        for app in apps.values():
            verify(app, case)
        timings = measure(apps, case, rounds, round_time)
        bare = timings.get("bare")
        falcon = timings.get("falcon")
        for label, timing in timings.items():
            rows.append(
                {
                    "case": case.name,
                    "framework": label,
                    "best_ns": timing.best_ns,
                    "median_ns": timing.median_ns,
                    "per_sec": 1e9 / timing.best_ns,
                    "vs_bare": _ratio(bare.best_ns if bare else None, timing.best_ns),
                    "vs_falcon": _ratio(falcon.best_ns if falcon else None, timing.best_ns),
                }
            )
    return {
        "routes": n_routes,
        "rounds": rounds,
        "round_time": round_time,
        "harness_ns": harness["harness"].best_ns,
        "rows": rows,
        "skipped": skipped,
    }


def run_scale(
    frameworks: Iterable[str] = ("microwsgi", "falcon", "bottle", "flask"),
    sizes: Iterable[int] = (10, 100, 1_000, 10_000),
    rounds: int = 7,
    round_time: float = 0.2,
) -> dict[str, Any]:
    """Section 2: the params case with more and more routes; ratio vs the smallest table."""
    case = CASES_BY_NAME["params + query"]
    sizes = sorted(sizes)
    skipped: dict[str, str] = {}
    apps: dict[str, WSGIApp] = {}
    build_seconds: dict[str, float] = {}
    for framework in frameworks:
        reason = unavailable_reason(framework)
        if reason is not None:
            skipped[framework] = reason
            continue
        for size in sizes:
            if size > SCALE_CAPS.get(framework, size):
                skipped[f"{framework}@{size:,}"] = SCALE_CAP_REASONS[framework]
                continue
            key = f"{framework}@{size}"
            started = time.perf_counter()
            app = build_app(framework, size)
            verify(app, case)  # the first request also compiles lazily built routers
            build_seconds[key] = time.perf_counter() - started
            apps[key] = app
    timings = measure(apps, case, rounds, round_time)
    rows = []
    for key, timing in timings.items():
        framework, routes = key.split("@")
        smallest = timings[f"{framework}@{sizes[0]}"]
        rows.append(
            {
                "framework": framework,
                "routes": int(routes),
                "best_ns": timing.best_ns,
                "median_ns": timing.median_ns,
                "per_sec": 1e9 / timing.best_ns,
                "vs_smallest": _ratio(smallest.best_ns, timing.best_ns),
                "build_s": build_seconds[key],
            }
        )
    return {"case": case.name, "sizes": sizes, "rounds": rounds, "rows": rows, "skipped": skipped}
