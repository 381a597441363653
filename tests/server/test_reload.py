"""Tests for microwsgi.server.reload: what `--reload` watches, and a broken app coming back.

The supervisor and its children run for real (`python -m microwsgi run ... --reload`); the
watcher's pieces are also tested on their own over files in a temporary directory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tools import ROOT, microwsgi_process, process_tree

from microwsgi.server import reload, sockets

RELOADING = ("run", "webapp:app", "--host", "127.0.0.1", "--port", "0", "--reload",
             "--no-access-log")  # fmt: skip

GOOD = textwrap.dedent(
    """
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fixed"]
    """
)


def test_tree_files_skips_tooling_and_hidden_folders(tmp_path: Path) -> None:
    for relative in ("a.py", "pkg/b.py", "pkg/c.txt", ".git/d.py", "__pycache__/e.py",
                     ".venv/f.py", ".hidden/g.py", "node_modules/h.py"):  # fmt: skip
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    found = {Path(p).relative_to(tmp_path).as_posix() for p in reload.tree_files(str(tmp_path))}
    assert found == {"a.py", "pkg/b.py"}


def test_a_watched_file_that_changes_or_goes_away_is_reported(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept.py", tmp_path / "gone.py"
    kept.write_text("x = 1")
    gone.write_text("y = 1")
    watcher = reload.Watcher(lambda path: None, lambda: [str(kept), str(gone)])
    stamps: dict[str, tuple[int, int] | None] = {}
    assert watcher.check(stamps) is None  # the first look is the baseline
    assert watcher.check(stamps) is None
    gone.unlink()
    assert watcher.check(stamps) == str(gone)
    kept.write_text("x = 22")
    os.utime(kept, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert watcher.check(stamps) == str(kept)


def test_loaded_modules_outside_the_standard_library_are_watched() -> None:
    files = reload.module_files()
    assert str(Path(reload.__file__).resolve()) in {str(Path(f).resolve()) for f in files}
    assert not any(f.endswith(os.sep + "threading.py") for f in files)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    source = tmp_path / "webapp.py"
    source.write_text("def app(environ, start_response:\n")  # a syntax error
    with microwsgi_process(*RELOADING, cwd=tmp_path, NO_COLOR="1") as proc:
        yield proc, source


def test_a_broken_app_is_restarted_once_a_file_changes(
    supervisor: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, source = supervisor
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line.startswith("Server listening on http://127.0.0.1:"), line
    port = int(line.split(":")[2].split()[0])
    # The child cannot import the app; it says so and waits for a change.
    for line in proc.stderr:
        if "until a file changes" in line:
            break
    source.write_text(GOOD)
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    for line in proc.stderr:  # the change is seen, and a new child serves the fixed app
        if "serving webapp" in line:
            break
    # The supervisor kept the socket: no request is refused while children come and go.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"fixed")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


# -- a child never outlives its supervisor ---------------------------------------------------------

# An app whose import lasts until the test lets it finish (or a minute has passed).
SLOW_IMPORT = (
    textwrap.dedent(
        """
        import pathlib, time
        here = pathlib.Path(__file__).parent
        (here / "importing").touch()
        deadline = time.monotonic() + 60
        while not (here / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        """
    )
    + GOOD
)


def wait_for_file(path: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within 30 s")
        time.sleep(0.05)


def ended(proc: subprocess.Popen[str], what: str) -> tuple[str, str]:
    """Wait (30 s at most) until no process holds `proc`'s stdout and stderr any more: `proc`
    and the children that inherited them have all ended. Returns what they wrote there."""
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: a process still holds the supervisor's output after 30 s")


def listening_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Server listening on http://127.0.0.1:"), line
    return int(line.split(":")[2].split()[0])


def test_a_child_still_importing_the_app_ends_when_its_supervisor_is_killed(
    tmp_path: Path,
) -> None:
    (tmp_path / "webapp.py").write_text(SLOW_IMPORT)
    with microwsgi_process(*RELOADING, cwd=tmp_path) as proc:
        wait_for_file(tmp_path / "importing", "child importing the app")
        proc.kill()  # SIGKILL: the supervisor can pass nothing on
        (tmp_path / "go").touch()  # a child still alive now would go on to serve
        ended(proc, "supervisor killed while its child imported the app")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_serving_child_ends_with_its_supervisor_however_it_ends(
    tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "webapp.py").write_text(GOOD)
    with microwsgi_process(*RELOADING, cwd=tmp_path) as proc:
        port = listening_port(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the child serves
        proc.send_signal(signum)
        ended(proc, f"supervisor ended by {signum.name}")
        assert proc.returncode == (-signum if signum == signal.SIGKILL else 0)


# A process that starts a grandchild following it with end_with_supervisor(), then waits.
FOLLOWER = textwrap.dedent(
    """
    import subprocess, sys
    follower = (
        "import os; from microwsgi.server import reload; "
        "reload.end_with_supervisor(os.getppid(), kernel={kernel}); "
        "print('following', flush=True); import time; time.sleep(60)"
    )
    subprocess.run([sys.executable, "-c", follower])
    """
)


@pytest.mark.parametrize("kernel", [True, False], ids=["prctl", "portable"])
def test_end_with_supervisor_ends_the_child_when_its_parent_is_killed(
    tmp_path: Path, kernel: bool
) -> None:
    with process_tree(sys.executable, "-c", FOLLOWER.format(kernel=kernel), cwd=tmp_path) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "following\n"
        proc.kill()
        ended(proc, "the follower's parent killed")


def test_end_with_supervisor_ends_a_child_whose_supervisor_is_already_gone(
    tmp_path: Path,
) -> None:
    late = "from microwsgi.server import reload; reload.end_with_supervisor(1); print('alive')"
    with process_tree(sys.executable, "-c", late, cwd=tmp_path) as proc:
        out, _ = ended(proc, "a child of a supervisor already gone")
    assert proc.returncode == -signal.SIGTERM and out == ""


def test_a_signal_that_comes_while_a_child_starts_reaches_that_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM lands after the new child exists, before the supervisor holds it."""
    (tmp_path / "webapp.py").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def signalled_while_starting(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(popen(*args, **kwargs))
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before os.kill returns
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", signalled_while_starting)
    rescued = threading.Event()

    def rescue() -> None:  # a child never told would keep supervise() waiting forever
        rescued.set()
        started[-1].kill()

    watchdog = threading.Timer(30, rescue)
    watchdog.start()
    try:
        assert reload.supervise(list(RELOADING), sockets.bind("127.0.0.1", 0)) == 0
    finally:
        watchdog.cancel()
    assert not rescued.is_set(), "the child started during the signal never heard of it"
    assert len(started) == 1 and started[0].returncode == -signal.SIGTERM
