"""Markdown for section 5 (servers side by side, ``servers.py``) and the targets it checks.

Every ratio compares figures of one run: requests per second (and the CPU time per request)
of microwsgi's engine, as the development server and as gunicorn's worker, against each other
server on the same application and path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.servers import OURS, THREADS
from benchmarks.wire import PATHS

__all__ = ["render_servers", "server_targets"]

# The targets: (our server, peer, lowest ratio of req/s).
GOALS = (
    ("gunicorn-microwsgi", "gunicorn-gthread", 4.0),
    ("gunicorn-microwsgi", "waitress", 3.0),
    ("gunicorn-microwsgi", "granian", 0.75),
)
WORKERS_GOAL = 1.4  # -w 2 against -w 1


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(ours: dict[str, Any] | None, theirs: dict[str, Any], key: str) -> float | None:
    """Ours against theirs: req/s ours/theirs; CPU per request theirs/ours (higher: better)."""
    if ours is None or not ours[key] or not theirs[key]:
        return None
    if key == "requests_per_sec":
        return float(ours[key] / theirs[key])
    return float(theirs[key] / ours[key])


def _by_case(section: dict[str, Any]) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    cases: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in section["keepalive"]:
        cases.setdefault((row["app"], row["case"]), {})[row["server"]] = row
    return cases


def _keepalive_tables(section: dict[str, Any]) -> list[str]:
    labels = section["servers"]
    lines: list[str] = []
    for (app, case), rows in _by_case(section).items():
        lines += [f"**{app} app, `{PATHS[case]}`** (8 connections)", ""]
        ours = [name for name in OURS if name in rows]
        header = ["Server", "req/s", "CPU µs/req", "p99 ms"]
        header += [f"{labels[name]}: req/s, CPU" for name in ours]
        header += ["rounds (req/s)", "errors"]
        body = []
        for name, row in sorted(rows.items(), key=lambda item: -item[1]["requests_per_sec"]):
            cells = [
                labels[name],
                f"{row['requests_per_sec']:,.0f}",
                f"{row['cpu_us_per_request']:.0f}",
                _ms(row["p99_ms"]),
            ]
            for our in ours:
                mine = rows[our]
                cells.append(
                    f"{_times(_ratio(mine, row, 'requests_per_sec'))},"
                    f" {_times(_ratio(mine, row, 'cpu_us_per_request'))}"
                )
            cells += [
                ", ".join(f"{rps:,}" for rps in row["rounds"]),
                row["socket_errors"] + row["non_2xx"],
            ]
            body.append(cells)
        lines += [*_table(header, body), ""]
    return lines


def render_servers(section: dict[str, Any]) -> list[str]:
    labels = section["servers"]
    lines = [
        "### 5. Servers side by side",
        "",
        f"Each server runs the app in one process with {THREADS} threads where it has threads, on"
        f" loopback; `{section['wrk']}`, the servers in turn, median of {section['rounds']}"
        " rounds (the order rotates). CPU µs/req is the CPU time of all the server's"
        " processes per request, from /proc; p99 is wrk's. The columns for microwsgi's"
        " servers are their ratios to the row's server: req/s ours/theirs and CPU"
        " theirs/ours (above 1x: ours is faster, or cheaper).",
        "",
        *(f"- {labels[name]}: {how}" for name, how in section["settings"].items()),
        "",
        *_keepalive_tables(section),
    ]
    many = section["many"]
    lines += [f"**{many['connections']} connections**, bare app, `/hello`", ""]
    lines += _table(
        ("Server", "req/s", "CPU µs/req", "p99 ms", "errors"),
        (
            (
                labels[row["server"]],
                f"{row['requests_per_sec']:,.0f}",
                f"{row['cpu_us_per_request']:.0f}",
                _ms(row["p99_ms"]),
                row["socket_errors"] + row["non_2xx"],
            )
            for row in many["rows"]
        ),
    )
    lines += ["", *_workers_table(section), *_mixed_table(section)]
    return [*lines, *(f"- skipped {name}: {why}" for name, why in section["skipped"].items())]


def _workers_table(section: dict[str, Any]) -> list[str]:
    workers = section["workers"]
    pairs: dict[str, dict[int, dict[str, Any]]] = {}
    for row in workers["rows"]:
        pairs.setdefault(row["server"], {})[row["workers"]] = row
    lines = [f"**`-w 2` against `-w 1`**, {workers['connections']} connections, bare app", ""]
    lines += _table(
        ("Server", "-w 1 req/s", "-w 2 req/s", "-w 2 / -w 1", "CPU µs/req", "rounds (req/s)"),
        (
            (
                section["servers"][name],
                f"{pair[1]['requests_per_sec']:,.0f}",
                f"{pair[2]['requests_per_sec']:,.0f}",
                _times(pair[2]["requests_per_sec"] / pair[1]["requests_per_sec"]),
                f"{pair[1]['cpu_us_per_request']:.0f}, {pair[2]['cpu_us_per_request']:.0f}",
                " / ".join(", ".join(f"{r:,}" for r in pair[w]["rounds"]) for w in (1, 2)),
            )
            for name, pair in pairs.items()
        ),
    )
    ceiling = workers_ceiling(section)
    if ceiling is not None:
        peer, best, ours = ceiling
        lines += [
            "",
            f"The ceiling on this machine in this run (wrk shares its cores): {peer}'s"
            f" {_times(best)}; microwsgi's worker reached {ours / best:.0%} of it.",
        ]
    return [*lines, ""]


def workers_ceiling(section: dict[str, Any]) -> tuple[str, float, float] | None:
    """(the other server with the best -w 2 / -w 1, its ratio, microwsgi's worker's ratio)."""
    ratios = {
        name: pair[2] / pair[1] for name, pair in _worker_pairs(section).items() if len(pair) == 2
    }
    ours = ratios.pop("gunicorn-microwsgi", None)
    if ours is None or not ratios:
        return None
    peer = max(ratios, key=ratios.__getitem__)
    return section["servers"][peer], ratios[peer], ours


def _worker_pairs(section: dict[str, Any]) -> dict[str, dict[int, float]]:
    """Each server's req/s by its number of workers."""
    pairs: dict[str, dict[int, float]] = {}
    for row in section["workers"]["rows"]:
        pairs.setdefault(row["server"], {})[row["workers"]] = row["requests_per_sec"]
    return pairs


def _mixed_table(section: dict[str, Any]) -> list[str]:
    mixed = section["mixed"]
    if not mixed["rows"]:
        return []
    lines = [
        f"**Mixed traffic**: the soak's mix (`benchmarks/soak.py`) for {mixed['seconds']:g} s"
        " each; latency of the small keep-alive requests",
        "",
    ]
    lines += _table(
        ("Server", "p50 ms", "p99 ms", "small answers", "wrong", "lost"),
        (
            (row["description"], _ms(row["p50_ms"]), _ms(row["p99_ms"]), row["answers"],
             row["wrong"], row["lost"])
            for row in mixed["rows"]
        ),
    )  # fmt: skip
    return [*lines, ""]


def server_targets(section: dict[str, Any]) -> list[tuple[str, float | None, float, str]]:
    """(label, measured ratio, goal, goal as shown) for each target this section checks."""
    found: list[tuple[str, float | None, float, str]] = []
    for (app, case), rows in _by_case(section).items():
        for ours, peer, goal in GOALS:
            if ours in rows and peer in rows:
                servers = section["servers"]
                label = f"{app} `{PATHS[case]}`: {servers[ours]} vs {servers[peer]}"
                value = _ratio(rows[ours], rows[peer], "requests_per_sec")
                found.append((label, value, goal, f"≥ {goal:g}x"))
    pairs = _worker_pairs(section)
    if "gunicorn-microwsgi" in pairs:
        pair = pairs["gunicorn-microwsgi"]
        found.append(("microwsgi worker, -w 2 vs -w 1", pair[2] / pair[1], WORKERS_GOAL, "≥ 1.4x"))
    mixed = {row["target"]: row for row in section["mixed"]["rows"]}
    if "microwsgi" in mixed and "waitress" in mixed and mixed["microwsgi"]["p99_ms"]:
        value = mixed["waitress"]["p99_ms"] / mixed["microwsgi"]["p99_ms"]
        label = "mixed traffic, small requests' p99: waitress's / the dev server's"
        found.append((label, value, 1.0, "≥ 1x"))
    return found
