"""Section 6, instructions per request: what callgrind counts the server spending on one request.

Instruction counts are what decide a hot-path change on a shared machine, where the wall clock
varies by ±30%. Three cases, each the bare app answering ``GET /hello`` (wrk's request: the
request line and Host, keep-alive):

- **(a)** the protocol, the WSGI bridge and the app, driven by one thread
  (``instructions_harness.py``: a blocking read loop, no engine around it), one connection;
- **(b)** the whole development server with its default threads (``serve(app)``), 8 connections;
- **(c)** gunicorn with microwsgi's worker (``-w 1 --threads 8``, as in section 5), 8
  connections; the worker process is counted, not the arbiter.

How it counts, and why this way. Each server runs, unmodified, under ``valgrind
--tool=callgrind``. This process is the client: it opens the connections, sends warm-up
requests (which also wait out the start-up), then asks callgrind for a dump (``callgrind_control
--dump``), which closes the part of the profile holding start-up and warm-up; then it sends
exactly N requests, one in flight per connection, checks every answer, and asks for a second
dump: that part holds the N requests and nothing else, and its ``summary:`` over N is the
figure. The requests callgrind obeys come from outside the process (through vgdb, which also
reaches a process blocked in a system call), so the server needs no hook of its own.
Two dumps rather than ``--zero`` then a dump: after a zero, callgrind's ``totals:`` line came
out 4-11% above the part's ``summary:``, while the parts between two dumps are exactly linear
in the work done (1,000 and 2,000 echo round trips cost 4.05M and 7.98M) and their summary and
totals agree. Neither ``--toggle-collect`` (every Python function runs inside the
interpreter's one eval loop, so no C function marks a request) nor client requests (they need
C code in the measured process) would count requests from outside. Hash randomisation is off
(``PYTHONHASHSEED=0``) so that two runs walk the same dicts alike. A run and its repeat agree
to about 0.1% for (a) and 2% for (b) and (c): their threads take the connections in a
different order from run to run, and their timers wake up a few times while they wait.

The measured processes run in a directory of their own, with only ``benchmarks`` added to
their import path, so that ``--python`` can point at another interpreter and count the
microwsgi it has installed (the compiled build's), never the source tree's.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.servers import process_tree
from benchmarks.wire import REPO_ROOT

__all__ = [
    "CASES",
    "build_of",
    "count_instructions",
    "import_dir",
    "measured_environment",
    "run_instructions",
]

PATH = "/hello"
EXPECTED_BODY = b'{"message": "Hello, World!"}'
START_TIMEOUT = 300.0  # seconds for a server to start under callgrind (50-100x slower)
STALL_TIMEOUT = 120.0  # seconds without any answer before the client gives up
_SUMMARY_RE = re.compile(rb"^summary: (\d+)", re.MULTILINE)

_DEV = (
    "import socket, sys; from benchmarks.apps import build_app; "
    "from microwsgi.server import serve; "
    "serve(build_app('bare'), sock=socket.socket(fileno=int(sys.argv[1])), access_log=False)"
)


def _harness(python: str, fd: int, where: Path) -> list[str]:
    return [python, "-m", "benchmarks.instructions_harness", str(fd)]


def _devserver(python: str, fd: int, where: Path) -> list[str]:
    return [python, "-c", _DEV, str(fd)]


def _gunicorn(python: str, fd: int, where: Path) -> list[str]:
    return [
        *(python, "-m", "gunicorn", "--bind", f"fd://{fd}", "--chdir", str(where)),
        *("--log-level", "warning", "--timeout", "600", "-k", "microwsgi.workers.Worker"),
        *("-w", "1", "--threads", "8", 'benchmarks.apps:build_app("bare")'),
    ]


def _itself(pid: int) -> int:
    return pid


def _only_child(pid: int) -> int:
    """gunicorn's one worker: the arbiter's child (valgrind follows the fork)."""
    children = process_tree(pid)[1:]
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker under {pid}, found {children}")
    return children[0]


@dataclass(frozen=True)
class Case:
    """One measured server: its label, how it runs, which of its processes is counted."""

    key: str
    label: str
    connections: int
    command: Callable[[str, int, Path], list[str]]  # (python, listening fd, import dir) -> argv
    counted: Callable[[int], int]  # the started process's pid -> the pid whose count is kept


CASES: dict[str, Case] = {
    "a": Case("a", "protocol + bridge + bare app, one thread", 1, _harness, _itself),
    "b": Case("b", "dev server, default threads", 8, _devserver, _itself),
    "c": Case("c", "gunicorn + microwsgi worker", 8, _gunicorn, _only_child),
}


@dataclass(frozen=True)
class Count:
    """What callgrind counted for one case."""

    case: str
    label: str
    requests: int
    connections: int
    instructions: int

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests


class Client:
    """Keep-alive connections, each with one request in flight, every answer checked."""

    def __init__(self, port: int, connections: int) -> None:
        self.request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        for sock in self.socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()

    def run(self, count: int, first_timeout: float = STALL_TIMEOUT) -> None:
        """Send exactly `count` requests and read their answers; raise if any is wrong."""
        buffers = {sock: bytearray() for sock in self.socks}
        sent = answered = 0
        with selectors.DefaultSelector() as selector:
            for sock in self.socks[:count]:
                sock.sendall(self.request)
                sent += 1
                selector.register(sock, selectors.EVENT_READ)
            timeout = first_timeout
            while answered < count:
                ready = selector.select(timeout)
                if not ready:
                    raise TimeoutError(f"no answer in {timeout:.0f} s ({answered}/{count})")
                timeout = STALL_TIMEOUT
                for key, _ in ready:
                    client = key.fileobj
                    assert isinstance(client, socket.socket)
                    data = client.recv(65536)
                    if not data:
                        raise ConnectionError("the server closed a keep-alive connection")
                    buffer = buffers[client]
                    buffer += data
                    while size := _answer_size(buffer):
                        del buffer[:size]
                        answered += 1
                        if sent < count:
                            client.sendall(self.request)
                            sent += 1


def _answer_size(buffer: bytearray) -> int:
    """The size of the complete answer at the front of `buffer` (0: not complete yet)."""
    end = buffer.find(b"\r\n\r\n")
    if end == -1:
        return 0
    head = bytes(buffer[:end]).lower()
    if not head.startswith(b"http/1.1 200 ") or b"\r\nconnection: close" in head:
        raise AssertionError(f"unexpected answer: {head[:200]!r}")
    match = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if match is None:
        raise AssertionError(f"answer without Content-Length: {head[:200]!r}")
    size = end + 4 + int(match[1])
    if len(buffer) < size:
        return 0
    if bytes(buffer[end + 4 : size]) != EXPECTED_BODY:
        raise AssertionError(f"wrong body: {bytes(buffer[end + 4 : size])!r}")
    return size


def _parts(folder: Path, pid: int) -> list[Path]:
    """The parts callgrind has dumped for `pid`, in order."""
    found = folder.glob(f"callgrind.out.{pid}.*")
    return sorted((p for p in found if p.suffix[1:].isdigit()), key=lambda p: int(p.suffix[1:]))


def _dump(folder: Path, pid: int) -> Path:
    """Ask callgrind in process `pid` for a dump; the part it wrote."""
    before = len(_parts(folder, pid))
    subprocess.run(
        ["callgrind_control", "--dump", str(pid)],
        check=True,
        capture_output=True,
        timeout=STALL_TIMEOUT,
    )
    deadline = time.monotonic() + STALL_TIMEOUT
    while time.monotonic() < deadline:
        parts = _parts(folder, pid)
        if len(parts) > before and _SUMMARY_RE.search(parts[-1].read_bytes()):
            return parts[-1]
        time.sleep(0.05)
    raise TimeoutError(f"callgrind in process {pid} wrote no dump")


def summary(part: Path) -> int:
    """The instructions a dumped part counts (its ``summary:`` line)."""
    match = _SUMMARY_RE.search(part.read_bytes())
    if match is None:
        raise ValueError(f"{part} has no summary line")
    return int(match[1])


def import_dir(folder: Path) -> Path:
    """A directory in `folder` from which `benchmarks` imports and `microwsgi` does not, so that
    a measured interpreter finds the microwsgi it has installed (a compiled build, say), never
    the source tree's."""
    where = folder / "import"
    where.mkdir()
    (where / "benchmarks").symlink_to(REPO_ROOT / "benchmarks", target_is_directory=True)
    return where


def measured_environment(where: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(where)}


def build_of(python: str) -> str:
    """'mypyc' when `python` imports a compiled WSGI bridge, else 'pure Python'."""
    with tempfile.TemporaryDirectory(prefix="microwsgi-build-") as tmp:
        done = subprocess.run(
            [python, "-c", "import microwsgi.server.wsgi as m; print(m.__file__)"],
            cwd=tmp,
            env=measured_environment(import_dir(Path(tmp))),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    return "mypyc" if done.stdout.strip().endswith(".so") else "pure Python"


@contextmanager
def _under_callgrind(
    case: Case, folder: Path, python: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The case's server under callgrind, on a socket bound here; always stopped."""
    where = import_dir(folder)
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        fd = listener.fileno()
        command = [
            "valgrind",
            "--tool=callgrind",
            # The forked gunicorn worker gets a control channel of its own only with this.
            "--trace-children=yes",
            f"--callgrind-out-file={folder}/callgrind.out.%p",
            "--dump-line=no",
            f"--log-file={folder}/valgrind.%p.log",
            *case.command(python, fd, where),
        ]
        env = measured_environment(where)
        log = (folder / "server.log").open("wb")
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            pass_fds=(fd,),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc, listener.getsockname()[1]
        finally:
            _stop(proc)
            log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL it if it lingers (callgrind exits slowly)."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


def count_instructions(
    case: Case, requests: int, warmup: int, python: str = sys.executable
) -> Count:
    """Run `case` under callgrind with `python` and count what `requests` keep-alive requests
    cost it."""
    with tempfile.TemporaryDirectory(prefix="microwsgi-callgrind-") as tmp:
        folder = Path(tmp)
        with _under_callgrind(case, folder, python) as (proc, port):
            client = Client(port, case.connections)
            try:
                try:
                    client.run(max(warmup, case.connections), first_timeout=START_TIMEOUT)
                except (OSError, AssertionError) as exc:
                    log = (folder / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"({case.key}) did not serve: {exc}\n{log}") from exc
                pid = case.counted(proc.pid)
                _dump(folder, pid)  # closes the part with start-up and warm-up
                client.run(requests)
                instructions = summary(_dump(folder, pid))
            finally:
                client.close()
    return Count(case.key, case.label, requests, case.connections, instructions)


def valgrind_missing() -> str | None:
    """Why the section cannot run here, or None."""
    for program in ("valgrind", "callgrind_control"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: apt-get install valgrind)"
    return None


def run_instructions(
    cases: str, requests: int, warmup: int, python: str = sys.executable
) -> dict[str, Any]:
    """Count each of `cases` ('abc' or a subset) with the microwsgi `python` imports; the
    section's raw results."""
    result: dict[str, Any] = {"requests": requests, "warmup": warmup, "rows": [], "skipped": {}}
    python = os.path.abspath(python) if os.sep in python else shutil.which(python) or python
    result["python"], result["build"] = python, build_of(python)
    missing = valgrind_missing()
    for key in cases:
        case = CASES[key]
        if missing is not None:
            result["skipped"][case.label] = missing
            continue
        print(f"  ({key}) {case.label} ...", file=sys.stderr, flush=True)
        count = count_instructions(case, requests, warmup, python)
        result["rows"].append({**asdict(count), "per_request": count.per_request})
    return result
