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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from microwsgi.server import reload

ROOT = Path(__file__).resolve().parents[2]

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
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "microwsgi", "run", "webapp:app", "--host", "127.0.0.1",
         "--port", "0", "--reload", "--no-access-log"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc, source
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


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
