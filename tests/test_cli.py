"""Tests for microwsgi.cli: `microwsgi run module:attr`, its error lines and `--reload`.

The command runs for real (`python -m microwsgi`) in a temporary directory holding the app
module; every wait is bounded.
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

from microwsgi.cli import ImportTargetError, load_app, main

ROOT = Path(__file__).resolve().parent.parent

APP = textwrap.dedent(
    """
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"{text}"]

    class Holder:
        wsgi = staticmethod(app)

    not_callable = 42
    """
)


def write_app(directory: Path, text: str = "v1", name: str = "webapp") -> Path:
    path = directory / f"{name}.py"
    path.write_text(APP.format(text=text))
    return path


def command(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "microwsgi", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "microwsgi", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def fetch(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def listening_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Server listening on http://127.0.0.1:"), line
    return int(line.split(":")[2].split()[0])


@pytest.fixture
def stop_all() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_import_error_is_one_line_and_non_zero(tmp_path: Path) -> None:
    done = finished("run", "nosuchmodule:app", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == "microwsgi: cannot import 'nosuchmodule': no such module\n"


def test_module_raising_on_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import broken\n")  # a prefix of its own name
    done = finished("run", "broken_app:app", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "error importing 'broken_app': ModuleNotFoundError" in done.stderr


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text("x = 1\ndef (:\n")
    done = finished("run", "typo:app", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "typo.py, line 2" in done.stderr


def test_port_in_use_is_one_line_and_non_zero(tmp_path: Path) -> None:
    write_app(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = finished(
            "run", "webapp:app", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path
        )
    assert done.returncode == 1
    assert done.stderr == f"microwsgi: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_run_serves_logs_plain_lines_when_piped_and_stops_on_sigterm(
    tmp_path: Path, stop_all: list[subprocess.Popen[str]]
) -> None:
    write_app(tmp_path, "served")
    proc = command("run", "webapp:Holder.wsgi", "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)
    stop_all.append(proc)
    port = listening_port(proc)
    assert fetch(port, "/some/path?q=1").endswith(b"served")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    access = [line for line in err.splitlines() if '"GET ' in line]
    assert len(access) == 1
    assert '127.0.0.1 - "GET /some/path?q=1 HTTP/1.1" 200 6 ' in access[0]
    assert "\x1b[" not in err


def test_reload_restarts_on_change_and_keeps_the_address(
    tmp_path: Path, stop_all: list[subprocess.Popen[str]]
) -> None:
    source = write_app(tmp_path, "first")
    proc = command(
        "run", "webapp:app", "--host", "127.0.0.1", "--port", "0", "--reload", cwd=tmp_path
    )
    stop_all.append(proc)
    port = listening_port(proc)
    deadline = time.monotonic() + 20
    body = b""
    while time.monotonic() < deadline and not body.endswith(b"first"):
        body = fetch(port)  # the child may still be importing: the backlog holds us
    assert body.endswith(b"first")
    time.sleep(0.05)
    source.write_text(APP.format(text="second"))
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))  # a visibly newer mtime
    while time.monotonic() < deadline and not body.endswith(b"second"):
        time.sleep(0.1)
        body = fetch(port)
    assert body.endswith(b"second")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "webapp.py changed, restarting" in err


def test_load_app_follows_dotted_attributes_and_defaults_to_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_app(tmp_path, name="cli_target_app")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = load_app("cli_target_app")
    assert module is load_app("cli_target_app:app")
    assert callable(load_app("cli_target_app:Holder.wsgi"))
    with pytest.raises(ImportTargetError, match="has no attribute 'missing'"):
        load_app("cli_target_app:missing")
    with pytest.raises(ImportTargetError, match="is not a WSGI callable"):
        load_app("cli_target_app:not_callable")
    with pytest.raises(ImportTargetError, match="expected module:attr"):
        load_app(":app")


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("microwsgi")
    assert main([]) == 2
    assert "run" in capsys.readouterr().err
