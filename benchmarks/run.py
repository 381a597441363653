"""The one command: ``python -m benchmarks [--quick] [--sections ...]``.

Runs the sections in order (1 in-process dispatch, 2 router scale, 3 gunicorn + wrk, 4 the
development server, 5 the servers side by side), prints the markdown report (docs/performance.md
shows its figures) and writes it to ``benchmarks/RESULTS.md``; ``--json`` also saves the raw
figures. Progress goes to stderr. Section 6, ``instructions`` (callgrind's instructions per
request, ``instructions.py``), is not part of a full run: it is asked for by name, prints its
counts and appends one row to its own history table in RESULTS.md, leaving the rest as it is.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.apps import FRAMEWORKS
from benchmarks.devserver_hook import run_devserver
from benchmarks.inprocess import run_dispatch, run_scale
from benchmarks.instructions import run_instructions
from benchmarks.instructions_report import MARKERS, add_row, render_counts
from benchmarks.report import machine_info, render
from benchmarks.servers import SERVERS, run_servers
from benchmarks.soak_report import carry_section
from benchmarks.wire import run_wire, wrk_path

SECTIONS = ("dispatch", "scale", "wire", "devserver", "servers")
MEASURED_ALONE = ("instructions",)  # run only when named: minutes under callgrind
RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"

# Full run: ~2 minutes in-process, ~4 minutes over the wire, ~1 minute for the dev server,
# ~7 minutes for the servers side by side.
FULL: dict[str, Any] = {
    "rounds": 7,
    "round_time": 0.2,
    "sizes": (10, 100, 1_000, 10_000),
    "scale_frameworks": ("microwsgi", "falcon", "bottle", "flask"),
    "wire_frameworks": FRAMEWORKS,
    "wire_workers": ("sync", "gthread"),
    "wire_cases": ("static JSON", "params + query"),
    "wire_rounds": 5,
    "duration": 2,
    "devserver_duration": 5,
    "servers": tuple(SERVERS),
    "servers_apps": ("bare", "microwsgi"),
    "servers_cases": ("static JSON", "params + query"),
    "servers_rounds": 3,
    "servers_duration": 3,
    "soak_seconds": 30.0,
    "instruction_requests": 5_000,
    "instruction_warmup": 500,
}
# --quick: every section runs, for a fraction of a second each (the smoke test uses it).
QUICK: dict[str, Any] = {
    "rounds": 2,
    "round_time": 0.01,
    "sizes": (10, 1_000),
    "scale_frameworks": ("microwsgi", "falcon"),
    "wire_frameworks": ("bare", "microwsgi"),
    "wire_workers": ("gthread",),
    "wire_cases": ("static JSON",),
    "wire_rounds": 1,
    "duration": 1,
    "devserver_duration": 1,
    "servers": tuple(SERVERS),
    "servers_apps": ("bare",),
    "servers_cases": ("static JSON",),
    "servers_rounds": 1,
    "servers_duration": 1,
    "soak_seconds": 2.0,
    "instruction_requests": 200,
    "instruction_warmup": 50,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="microwsgi's benchmark suite."
    )
    parser.add_argument("--quick", action="store_true", help="tiny runs, for the smoke test")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS + MEASURED_ALONE)}"
        f" (default: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help="comma-separated subset of frameworks, for every section (default: all)",
    )
    parser.add_argument("--rounds", type=int, help="in-process rounds per app")
    parser.add_argument("--round-time", type=float, help="seconds per in-process round")
    parser.add_argument("--duration", type=int, help="seconds per wrk run and dev-server run")
    parser.add_argument(
        "--wire-rounds", type=int, help="wrk runs per framework (or server) and case"
    )
    parser.add_argument(
        "--soak-seconds", type=float, help="seconds of mixed traffic per server (0: none)"
    )
    parser.add_argument(
        "--cases", default="abc", help="instruction counts: which of the cases a, b, c to run"
    )
    parser.add_argument("--requests", type=int, help="instruction counts: requests counted")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="instruction counts: the interpreter whose microwsgi is measured (default: this one)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="markdown file to write")
    parser.add_argument("--no-write", action="store_true", help="print only, write no file")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    args = parser.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS + MEASURED_ALONE)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    if set(args.frameworks) - set(FRAMEWORKS):
        parser.error(f"frameworks must be among {', '.join(FRAMEWORKS)}")
    if not args.cases or set(args.cases) - set("abc"):
        parser.error("--cases takes letters among a, b and c")
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the chosen sections; return every figure plus the machine description."""
    plan = dict(QUICK if args.quick else FULL)
    overrides = {
        "rounds": args.rounds,
        "round_time": args.round_time,
        "duration": args.duration,
        "devserver_duration": args.duration,
        "servers_duration": args.duration,
        "wire_rounds": args.wire_rounds,
        "servers_rounds": args.wire_rounds,
        "soak_seconds": args.soak_seconds,
        "instruction_requests": args.requests,
    }
    plan.update({key: value for key, value in overrides.items() if value is not None})
    for key in ("scale_frameworks", "wire_frameworks"):
        plan[key] = tuple(f for f in plan[key] if f in args.frameworks)
    results: dict[str, Any] = {"machine": machine_info(command, wrk_path()), "plan": plan}
    started = time.monotonic()
    if "dispatch" in args.sections:
        _log("1/5 in-process dispatch ...")
        results["dispatch"] = run_dispatch(args.frameworks, plan["rounds"], plan["round_time"])
    if "scale" in args.sections:
        _log("2/5 router scale ...")
        results["scale"] = run_scale(
            plan["scale_frameworks"], plan["sizes"], plan["rounds"], plan["round_time"]
        )
    if "wire" in args.sections:
        _log("3/5 gunicorn + wrk ...")
        results["wire"] = run_wire(
            plan["wire_frameworks"],
            plan["wire_workers"],
            plan["wire_cases"],
            duration=plan["duration"],
            rounds=plan["wire_rounds"],
        )
    if "devserver" in args.sections:
        _log("4/5 development server ...")
        results["devserver"] = run_devserver(plan["devserver_duration"])
    if "servers" in args.sections:
        _log("5/5 servers side by side ...")
        results["servers"] = run_servers(
            plan["servers"],
            plan["servers_apps"],
            plan["servers_cases"],
            duration=plan["servers_duration"],
            rounds=plan["servers_rounds"],
            soak_seconds=plan["soak_seconds"],
            quick=args.quick,
        )
    if "instructions" in args.sections:
        _log("6. instructions per request (callgrind) ...")
        results["instructions"] = run_instructions(
            args.cases, plan["instruction_requests"], plan["instruction_warmup"], args.python
        )
    _log(f"done in {time.monotonic() - started:.0f} s")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shown = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "benchmarks", *shown])
    results = run(args, command)
    if set(args.sections) - set(MEASURED_ALONE):
        markdown = render(results)
        print(markdown)
        if not args.no_write:
            # The soak (python -m benchmarks.soak) and the instruction counts keep sections of
            # their own: carry them over.
            markdown = carry_section(markdown, args.output)
            markdown = carry_section(markdown, args.output, markers=MARKERS)
            args.output.write_text(markdown, encoding="utf-8")
            _log(f"wrote {args.output}")
    if "instructions" in results:
        counted = results["instructions"]
        print("\n".join(render_counts(counted)))
        print(add_row(counted, results["machine"], args.output, write=not args.no_write))
        if not args.no_write:
            _log(f"added a row to the instruction counts in {args.output}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
