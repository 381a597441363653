"""The soak's figures as markdown, and their own section of `benchmarks/RESULTS.md`.

`render(results, skipped, command)` gives one table with a column per server, measured one
after the other in one session. `write_section` puts it between the `<!-- soak -->` markers of
RESULTS.md (appending them the first time); `carry_section` lets the main benchmark run,
which rewrites RESULTS.md whole, keep the soak section it did not measure.
"""

from __future__ import annotations

import datetime
import platform
import shlex
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.report import cpu_model

if TYPE_CHECKING:
    from benchmarks.soak import SoakResult

__all__ = ["carry_section", "render", "write_section"]

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- soak -->", "<!-- /soak -->"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _mix_text(result: SoakResult) -> str:
    mix = result.mix
    think = f"think time up to {mix.pause * 1000:g} ms" if mix.pause else "no think time"
    heavy = f"up to {mix.heavy_pause * 1000:g} ms" if mix.heavy_pause else "none"
    return (
        f"{mix.keepalive} keep-alive clients of small requests ({think}), {mix.pipelined}"
        f" pipelining bursts of 20-50, {mix.upload} uploaders (Content-Length or chunked, up to"
        f" {mix.max_upload >> 20} MiB, checksum verified by the app) and {mix.download}"
        f" downloaders (up to {mix.max_download >> 20} MiB, think time {heavy}),"
        f" {mix.slow_headers} clients sending heads a byte at a time, {mix.disconnect_body}"
        f" breaking off mid-body and {mix.disconnect_response} mid-response (FIN or reset),"
        f" {mix.never_read} that never read (then reset), {mix.idle} idle connections"
        " (half after one request) held throughout"
    )


def _graceful(result: SoakResult) -> str:
    graceful = result.graceful
    if graceful is None:
        return "-"
    answered = "answered" if graceful.in_flight_answered else "NOT answered"
    text = f"in-flight {answered}, {graceful.idle_closed} idle closed, exit {graceful.exit_status}"
    return text + "".join(f"; {note}" for note in graceful.notes)


def _kind(name: str, caused: bool = False) -> Callable[[SoakResult], str]:
    def cell(result: SoakResult) -> str:
        tally = result.kinds[name]
        return f"{tally.caused:,}" if caused else f"{tally.ok:,}"

    return cell


def _rss(result: SoakResult) -> str:
    return (
        f"{result.baseline.rss_kib / 1024:.1f} / {result.peak.rss_kib / 1024:.1f}"
        f" / {result.end.rss_kib / 1024:.1f}"
    )


def _failures(result: SoakResult) -> str:
    notes = [f"{kind}: {note}" for kind, t in result.kinds.items() for note in t.notes[:1]]
    return f"{result.wrong} / {result.lost}" + (f" ({'; '.join(notes)})" if notes else "")


def _cpu_per_answer(result: SoakResult) -> float:
    return result.cpu_seconds * 1e6 / max(1, sum(t.ok for t in result.kinds.values()))


def _ratios(result: SoakResult, base: SoakResult) -> str:
    """This column over the first: the figures to compare, measured side by side."""
    p99 = result.latency_ms["p99"] / max(base.latency_ms["p99"], 1e-9)
    cpu = _cpu_per_answer(result) / max(_cpu_per_answer(base), 1e-9)
    return f"{p99:.2f}x / {cpu:.2f}x"


ROWS: list[tuple[str, Callable[[SoakResult], str]]] = [
    (
        "small keep-alive requests: p50 / p99 / max ms",
        lambda r: " / ".join(f"{r.latency_ms[k]:.1f}" for k in ("p50", "p99", "max")),
    ),
    ("answers checked right: keep-alive", _kind("keepalive")),
    ("pipelined", _kind("pipelined")),
    ("uploads (checksum verified)", _kind("upload")),
    ("downloads (checksum verified)", _kind("download")),
    ("heads sent a byte at a time", _kind("slow_headers")),
    ("on idle connections (start + end)", _kind("idle")),
    ("breaks the clients caused: mid-body", _kind("disconnect_body", caused=True)),
    ("mid-response", _kind("disconnect_response", caused=True)),
    ("never read", _kind("never_read", caused=True)),
    ("**wrong / lost answers**", _failures),
    ("RSS MiB: start / peak / end", _rss),
    ("RSS MiB every 10 s", lambda r: " ".join(f"{mib:g}" for _, mib in r.rss_mib_series)),
    (
        "peak open fds (peak client connections)",
        lambda r: f"{r.peak.fds} ({r.peak_client_connections})",
    ),
    ("peak threads", lambda r: str(r.peak.threads)),
    (
        "server CPU s (µs per answer)",
        lambda r: f"{r.cpu_seconds:.1f} ({_cpu_per_answer(r):.0f})",
    ),
    (
        "context switches voluntary / involuntary",
        lambda r: "{:,} / {:,}".format(*r.context_switches),
    ),
    ("idle connections opened in s", lambda r: f"{r.idle_open_seconds:g}"),
    (
        "idle connections still answering at the end",
        lambda r: f"{r.idle_still_open} of {r.mix.idle}",
    ),
    (
        "fresh request afterwards, best of tries ms",
        lambda r: f"{min(r.fresh_request_ms, default=0):.1f}",
    ),
    ("SIGTERM (idle open, slow request in flight)", _graceful),
    ("tracebacks in the server's log", lambda r: str(r.log_tracebacks)),
]


def render(results: Sequence[SoakResult], skipped: dict[str, str], command: Sequence[str]) -> str:
    """The soak section: machine, command, mix, then one column per server."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Soak: mixed traffic, server by server",
        "",
        f"- Date: {date}; CPU: {cpu_model()}; Python {platform.python_version()}",
        f"- Packages: waitress {_version('waitress')}, gunicorn {_version('gunicorn')}",
        f"- Command: `flock /tmp/microwsgi-bench.lock {shlex.join(command)}`",
    ]
    if results:
        lines.append(f"- {results[0].seconds:g} s per server; mix: {_mix_text(results[0])}.")
        lines += [f"- {r.target}: {r.description}" for r in results]
        lines += ["", "| | " + " | ".join(r.target for r in results) + " |"]
        lines.append("|---|" + "---|" * len(results))
        lines += [
            f"| {label} | " + " | ".join(cell(r) for r in results) + " |" for label, cell in ROWS
        ]
        label = f"small keep-alive p99 / CPU per answer, over {results[0].target}'s"
        lines.append(f"| {label} | " + " | ".join(_ratios(r, results[0]) for r in results) + " |")
    lines += [f"- skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


def write_section(markdown: str, path: Path = RESULTS_PATH) -> None:
    """Put `markdown` between the soak markers of `path` (appended the first time)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN}\n{markdown.rstrip()}\n{END}\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def carry_section(
    new_text: str, path: Path = RESULTS_PATH, markers: tuple[str, str] = (BEGIN, END)
) -> str:
    """`new_text` plus the section between `markers` (the soak's unless told) that `path` has
    now, so a rewrite does not lose it."""
    begin, end = markers
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin not in old or end not in old or begin in new_text:
        return new_text
    block = begin + old.partition(begin)[2].partition(end)[0] + end
    return new_text.rstrip("\n") + "\n\n" + block + "\n"
