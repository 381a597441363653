"""The compiled build beside the pure-Python one, over the wire.

``python -m benchmarks.compiled --python .venv-compiled/bin/python`` runs the development
server (8 threads) and gunicorn with microwsgi's worker (``-w 1 --threads 8``) on the bare app's
``/hello``, each with this interpreter's microwsgi (pure Python) and with the microwsgi the
other interpreter has installed (``MICROWSGI_MYPYC=1 pip install .``: the protocol and the WSGI
bridge compiled by mypyc), loaded by ``wrk -t1 -c8`` in interleaved rounds as section 5 does;
it prints the median req/s and CPU per request of each, and the compiled build's ratios. The
instruction counts of the two builds are ``python -m benchmarks --sections instructions
[--python ...]``. Wall-clock figures on a shared machine are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.instructions import build_of, import_dir, measured_environment
from benchmarks.servers import (
    THREADS,
    Running,
    _interleaved,
    _median_row,
)
from benchmarks.wire import PATHS, READY_TIMEOUT, _stop, _wait_ready, wrk_path

_DEV = (
    "import socket, sys; from benchmarks.apps import build_app; "
    "from microwsgi.server import serve; "
    "serve(build_app('bare'), sock=socket.socket(fileno=int(sys.argv[1])), "
    f"threads={THREADS}, access_log=False)"
)


def _command(server: str, python: str, fd: int, where: Path) -> list[str]:
    if server == "dev server":
        return [python, "-c", _DEV, str(fd)]
    return [
        *(python, "-m", "gunicorn", "--bind", f"fd://{fd}", "--chdir", str(where)),
        *("--log-level", "warning", "-k", "microwsgi.workers.Worker", "-w", "1"),
        *("--threads", str(THREADS), 'benchmarks.apps:build_app("bare")'),
    ]


@contextmanager
def _running(server: str, python: str, folder: Path) -> Iterator[Running]:
    """`server` run by `python` (importing the microwsgi it has installed); always stopped."""
    where = import_dir(folder)
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        _command(server, python, sock.fileno(), where),
        cwd=folder,
        env=measured_environment(where),
        pass_fds=(sock.fileno(),),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sock.close()  # the server holds its own copy
        _wait_ready(port, PATHS["static JSON"], proc, READY_TIMEOUT)
        yield Running(server, port, proc)
    finally:
        sock.close()
        _stop(proc)


def compare(compiled: str, duration: int, rounds: int) -> list[dict[str, object]]:
    """Each server in both builds, rounds interleaved; one row per server and build."""
    pure = sys.executable
    rows: list[dict[str, object]] = []
    for server in ("dev server", "gunicorn + microwsgi worker"):
        with ExitStack() as stack:
            started = {}
            for python in (pure, compiled):
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                started[build_of(python)] = stack.enter_context(_running(server, python, folder))
            runs = _interleaved(started, PATHS["static JSON"], duration, 8, rounds)
            rows += [_median_row(runs[build], server=server, build=build) for build in started]
    return rows


def render(rows: list[dict[str, object]]) -> str:
    lines = ["| server | build | req/s (median) | rounds | CPU µs/req | vs pure Python |"]
    lines.append("|---|---|---|---|---|---|")
    pure = {row["server"]: row for row in rows if row["build"] == "pure Python"}
    for row in rows:
        base = pure[row["server"]]
        ratio = float(str(row["requests_per_sec"])) / float(str(base["requests_per_sec"]))
        lines.append(
            f"| {row['server']} | {row['build']} | {row['requests_per_sec']:,.0f} | {row['rounds']}"
            f" | {row['cpu_us_per_request']:.0f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compiled", description=__doc__)
    parser.add_argument("--python", required=True, help="an interpreter with a compiled build")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args(argv)
    if wrk_path() is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    compiled = str(Path(args.python).absolute())
    if build_of(compiled) != "mypyc":
        parser.error(f"{args.python} imports no compiled build of microwsgi")
    print(render(compare(compiled, args.duration, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
