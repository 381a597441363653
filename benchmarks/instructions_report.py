"""The instruction counts' history: one dated row per run, in its own section of RESULTS.md.

`add_row(result, machine, path)` appends this run's row to the table between the
``<!-- instructions -->`` markers of `path` (creating the section, after whatever the file
holds, the first time) and returns the section; rows already there are kept, so the table is
the history of every run. The main benchmark run, which rewrites RESULTS.md whole,
keeps it with ``soak_report.carry_section(..., markers=MARKERS)``. Measuring is ``instructions.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from benchmarks.wire import REPO_ROOT

__all__ = ["MARKERS", "add_row", "render_counts"]

MARKERS = BEGIN, END = "<!-- instructions -->", "<!-- /instructions -->"
HEADER = (
    "| Date (UTC) | Commit | Python | (a) protocol + bridge + app | (b) dev server"
    " | (c) gunicorn + worker | Requests | Command |"
)
# The figures the issue started from, counted before this benchmark existed.
EARLIER = (
    "| 2026-11-29 | before 8113e8f | CPython 3.11.7 | ~121,000 | ~145,000 | - | wrk -c8, 10 s"
    " | earlier session: `callgrind_control -z`/`-d` around wrk, one bare epoll loop for (a) |"
)
INTRO = (
    "Instructions per request counted by callgrind (`python -m benchmarks --sections"
    " instructions`; how and why in `benchmarks/instructions.py`): `GET /hello` answered by the"
    " bare app, keep-alive; (a) the protocol, the WSGI bridge and the app driven by one thread"
    " over one connection, (b) the development server with its default threads, (c) gunicorn"
    " with microwsgi's worker (`-w 1 --threads 8`, the worker process counted), both over 8"
    " connections. Each row is one run, appended; the counts do not depend on the machine's"
    " load, only on the code, the Python and the request mix."
)


def _commit() -> str:
    """The short commit measured, marked ``+changes`` when the package differs from it."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "-"
    changed = git("diff", "--quiet", "HEAD", "--", "microwsgi", "benchmarks/instructions*.py")
    return head.stdout.strip() + ("+changes" if changed.returncode else "")


def _cell(rows: dict[str, dict[str, Any]], key: str) -> str:
    row = rows.get(key)
    return "-" if row is None else f"{row['per_request']:,.0f}"


def _row(result: dict[str, Any], machine: dict[str, Any]) -> str:
    rows = {row["case"]: row for row in result["rows"]}
    cells = [
        machine["date"].removesuffix(" UTC"),
        _commit(),
        f"{machine['python']}, {result['build']}" if "build" in result else machine["python"],
        *(_cell(rows, key) for key in "abc"),
        f"{result['requests']:,}",
        f"`{machine['command']}`",
    ]
    return "| " + " | ".join(cells) + " |"


def render_counts(result: dict[str, Any]) -> list[str]:
    """This run's counts as lines of text, one per case (for the console)."""
    lines = [
        f"({row['case']}) {row['label']}: {row['per_request']:,.0f} instructions per request"
        f" ({row['instructions']:,} over {row['requests']:,} requests,"
        f" {row['connections']} connection(s))"
        for row in result["rows"]
    ]
    return lines + [f"skipped {label}: {why}" for label, why in result["skipped"].items()]


def add_row(result: dict[str, Any], machine: dict[str, Any], path: Path, write: bool) -> str:
    """Append this run's row to the history in `path` (if `write`); the section, as markdown."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    row = _row(result, machine)
    if BEGIN in old and END in old:
        before, _, rest = old.partition(BEGIN)
        inside, _, after = rest.partition(END)
        section = BEGIN + inside.rstrip("\n") + "\n" + row + "\n" + END
    else:
        before, after = old.rstrip("\n") + ("\n\n" if old.strip() else ""), "\n"
        heading = "## Instructions per request"
        table = "\n".join((HEADER, "|" + "---|" * HEADER.count(" | ") + "---|", EARLIER, row))
        section = f"{BEGIN}\n{heading}\n\n{INTRO}\n\n{table}\n{END}"
    if write:
        path.write_text(before + section + after, encoding="utf-8")
    return section
