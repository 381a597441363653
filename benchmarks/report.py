"""Markdown for the results: machine header, one table per section, the performance targets.

Only ratios are meant to be compared across runs: the absolute figures depend on the machine
(often a shared, noisy one), the ratios measured side by side in one run much less.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Iterable
from typing import Any

from benchmarks.apps import FRAMEWORKS, framework_version, unavailable_reason
from benchmarks.servers_report import render_servers, server_targets

TOOLS = ("werkzeug", "gunicorn", "waitress", "granian")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wrk_version(wrk: str | None) -> str:
    if wrk is None:
        return "not installed"
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0] if first else "?"


def machine_info(command: str, wrk: str | None) -> dict[str, Any]:
    """Everything a reader needs to judge the figures: CPU, cores, versions, date, command."""
    versions = {}
    for name in (*FRAMEWORKS[1:], *TOOLS):
        if name in FRAMEWORKS and unavailable_reason(name) is not None:
            versions[name] = "unavailable"
            continue
        try:
            versions[name] = framework_version(name)
        except Exception:  # a missing tool only blanks its version, the run goes on
            versions[name] = "unavailable"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": versions,
        "wrk": wrk_version(wrk),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
    }


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _skipped(section: dict[str, Any]) -> list[str]:
    return [f"- skipped {name}: {why}" for name, why in section.get("skipped", {}).items()]


def render_header(machine: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    return [
        f"- Date: {machine['date']}",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores"
        + (f" ({machine['usable_cores']} usable)" if machine.get("usable_cores") else ""),
        f"- Python: {machine['python']} on {machine['platform']}",
        f"- Packages: {versions}",
        f"- wrk: {machine['wrk']}",
        f"- Command: `{machine['command']}`",
        "",
        "The machine is shared and noisy: compare the ratios (measured side by side in one run),"
        " not the absolute figures.",
    ]


def render_dispatch(section: dict[str, Any]) -> list[str]:
    lines = [
        "### 1. In-process dispatch",
        "",
        f"Each app has {section['routes']} routes and is called directly with a prebuilt environ"
        f" (best of {section['rounds']} interleaved rounds of ~{section['round_time']:g} s;"
        f" the harness alone costs {section['harness_ns'] / 1000:.2f} µs per call and is included"
        " in every figure).",
        "",
    ]
    by_case: dict[str, list[dict[str, Any]]] = {}
    for row in section["rows"]:
        by_case.setdefault(row["case"], []).append(row)
    for case, rows in by_case.items():
        lines.append(f"**{case}**")
        lines.append("")
        lines += _table(
            ("Framework", "req/s", "µs/req (best)", "µs/req (median)", "vs bare", "vs Falcon"),
            (
                (
                    row["framework"],
                    f"{row['per_sec']:,.0f}",
                    f"{row['best_ns'] / 1000:.2f}",
                    f"{row['median_ns'] / 1000:.2f}",
                    _pct(row["vs_bare"]),
                    _times(row["vs_falcon"]),
                )
                for row in sorted(rows, key=lambda r: r["best_ns"])
            ),
        )
        lines.append("")
    return lines + _skipped(section)


def _scale_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"{row['best_ns'] / 1000:.2f} µs ({_pct(row['vs_smallest'])})"


def render_scale(section: dict[str, Any]) -> list[str]:
    sizes = section["sizes"]
    lines = [
        "### 2. Router scale",
        "",
        f"The {section['case']} case with more routes registered (µs per request, best of"
        f" {section['rounds']} rounds; % = throughput relative to {sizes[0]} routes).",
        "",
    ]
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    for row in section["rows"]:
        cells.setdefault(row["framework"], {})[row["routes"]] = row
    lines += _table(
        ("Framework", *(f"{size:,} routes" for size in sizes), "build + 1st request"),
        (
            (
                framework,
                *(_scale_cell(by_size.get(size)) for size in sizes),
                f"{by_size[max(by_size)]['build_s']:.2f} s ({max(by_size):,} routes)",
            )
            for framework, by_size in cells.items()
        ),
    )
    return [*lines, "", *_skipped(section)]


def render_wire(section: dict[str, Any]) -> list[str]:
    lines = [
        "### 3. Over the wire (gunicorn, 1 worker)",
        "",
        f"`{section['command']}` on loopback, best of {section['rounds']} interleaved rounds."
        " The sync worker closes the connection after every response (wrk reconnects each"
        " time); gthread (`--threads 4`) keeps connections alive. CPU/req is the gunicorn"
        " worker's CPU time per request (from /proc, lowest round), steadier than req/s on a"
        " shared machine; its ratio is bare's CPU/req over the framework's.",
        "",
    ]
    rows = section["rows"]
    lines += _table(
        (
            "Worker",
            "Case",
            "Framework",
            "req/s",
            "vs bare",
            "CPU µs/req",
            "vs bare (CPU)",
            "socket errors",
            "non-2xx",
        ),
        (
            (
                row["worker"],
                row["case"],
                row["framework"],
                f"{row['requests_per_sec']:,.0f}",
                _pct(row["vs_bare"]),
                f"{row['cpu_us_per_request']:.0f}",
                _pct(row["cpu_vs_bare"]),
                row["socket_errors"],
                row["non_2xx"],
            )
            for row in sorted(rows, key=lambda r: (r["worker"], r["case"], -r["requests_per_sec"]))
        ),
    )
    return [*lines, "", *_skipped(section)]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = []
        for key, inner in value.items():
            items += _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return items
    return [(prefix, value)]


def render_devserver(section: dict[str, Any]) -> list[str]:
    lines = ["### 4. Development server"]
    if "unavailable" in section:
        return [*lines, "", f"Not measured: {section['unavailable']}", ""]
    result = section["result"]
    rows = result.get("rows") if isinstance(result, dict) else None
    if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        header = list(dict.fromkeys(key for row in rows for key in row))
        lines.append("")
        lines += _table(header, ([row.get(key, "") for key in header] for row in rows))
        rest = {key: value for key, value in result.items() if key != "rows"}
    else:  # a copy: the tables below take keys out, and the results are saved as JSON after
        rest = dict(result) if isinstance(result, dict) else {"result": result}
    for key, value in list(rest.items()):
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            header = list(dict.fromkeys(k for v in value.values() for k in v))
            lines += ["", f"**{key}**", ""]
            lines += _table(
                [key, *header], ([n, *(v.get(k, "") for k in header)] for n, v in value.items())
            )
            del rest[key]
    if rest:
        lines += ["", *_table(("Measure", "Value"), _flatten(rest))]
    return [*lines, ""]


def _target(label: str, value: float | None, goal: float, shown: str) -> tuple[str, str, str, str]:
    if value is None:
        return label, "-", shown, "not measured"
    verdict = "met" if value >= goal else f"missed by {(goal - value) / goal * 100:.1f}%"
    measured = f"{value:.2f}x" if shown.endswith("x") else f"{value * 100:.0f}%"
    return label, measured, shown, verdict


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The performance targets, checked against this run's ratios."""
    found: list[tuple[str, str, str, str]] = []
    dispatch = results.get("dispatch")
    if dispatch:
        mw = {row["case"]: row for row in dispatch["rows"] if row["framework"] == "microwsgi"}
        goals = (
            ("static JSON", "vs_falcon", 3.0, "≥ 3x"),
            ("static JSON", "vs_bare", 0.75, "≥ 75%"),
            ("params + query", "vs_falcon", 2.0, "≥ 2x"),
            ("params + query", "vs_bare", 0.60, "≥ 60%"),
            ("JSON POST", "vs_falcon", 2.0, "≥ 2x"),
        )
        for case, key, goal, shown in goals:
            label = f"{case} vs {'Falcon' if key == 'vs_falcon' else 'bare'}"
            found.append(_target(label, mw.get(case, {}).get(key), goal, shown))
    scale = results.get("scale")
    if scale:
        rows = [row for row in scale["rows"] if row["framework"] == "microwsgi"]
        largest = max(rows, key=lambda row: row["routes"]) if rows else None
        label = f"{largest['routes']:,} routes vs {scale['sizes'][0]}" if largest else "scale"
        found.append(_target(label, largest["vs_smallest"] if largest else None, 0.90, "≥ 90%"))
    wire = results.get("wire")
    if wire:
        for row in wire["rows"]:
            if row["framework"] == "microwsgi":
                label = f"gunicorn {row['worker']}, {row['case']} vs bare"
                found.append(_target(f"{label} (req/s)", row["vs_bare"], 0.97, "≥ 97%"))
                found.append(_target(f"{label} (CPU/req)", row["cpu_vs_bare"], 0.97, "≥ 97%"))
    servers = results.get("servers")
    if servers:
        found += [_target(*target) for target in server_targets(servers)]
    return found


def render(results: dict[str, Any]) -> str:
    """The whole markdown report: header, targets, then every section that ran."""
    lines = ["## Performance", "", *render_header(results["machine"]), ""]
    checked = targets(results)
    if checked:
        lines += ["### Targets", ""]
        lines += _table(("Target", "Measured", "Goal", "Verdict"), checked)
        lines.append("")
    renderers = {
        "dispatch": render_dispatch,
        "scale": render_scale,
        "wire": render_wire,
        "devserver": render_devserver,
        "servers": render_servers,
    }
    for name, renderer in renderers.items():
        if name in results:
            lines += renderer(results[name])
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
