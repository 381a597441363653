"""microwsgi.cli: `microwsgi run APP` with its app references, its error lines and `--reload`.

The command runs for real (`python -m microwsgi`) in a temporary directory holding the app
module; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tools import microwsgi_process, run_command

from microwsgi.cli import main
from microwsgi.cli.loading import AppLoadError, find_app, load_app

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


Start = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start() -> Iterator[Start]:
    """`start(*ARGS, cwd=...)` runs `python -m microwsgi ARGS`; at the end, also on failure,
    every process it started (a --reload child included) is killed and its pipes read, bounded."""
    with contextlib.ExitStack() as stack:
        yield lambda *args, cwd: stack.enter_context(microwsgi_process(*args, cwd=cwd, NO_COLOR=""))


def test_import_error_is_one_line_and_non_zero(tmp_path: Path) -> None:
    done = run_command("run", "nosuchmodule:app", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (
        "microwsgi: cannot import 'nosuchmodule': no such module (run from the folder holding it,"
        " or give the file: microwsgi run path/to/app.py)\n"
    )


def test_module_raising_on_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import broken\n")  # a prefix of its own name
    done = run_command("run", "broken_app:app", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "error importing 'broken_app': ModuleNotFoundError" in done.stderr


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text("x = 1\ndef (:\n")
    done = run_command("run", "typo:app", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "typo.py, line 2" in done.stderr


def test_port_in_use_is_one_line_and_non_zero(tmp_path: Path) -> None:
    write_app(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_command(
            "run", "webapp:app", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path
        )
    assert done.returncode == 1
    assert done.stderr == f"microwsgi: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_run_serves_logs_plain_lines_when_piped_and_stops_on_sigterm(
    tmp_path: Path, start: Start
) -> None:
    write_app(tmp_path, "served")
    proc = start("run", "webapp:Holder.wsgi", "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)
    port = listening_port(proc)
    assert fetch(port, "/some/path?q=1").endswith(b"served")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    access = [line for line in err.splitlines() if '"GET ' in line]
    assert len(access) == 1
    assert '127.0.0.1 - "GET /some/path?q=1 HTTP/1.1" 200 6 ' in access[0]
    assert "\x1b[" not in err


def reloading(reference: str, cwd: Path, start: Start) -> tuple[subprocess.Popen[str], int]:
    """`microwsgi run APP --reload` on a free port: the process and its port."""
    proc = start("run", reference, "--host", "127.0.0.1", "--port", "0", "--reload", cwd=cwd)
    return proc, listening_port(proc)


def interrupted(proc: subprocess.Popen[str]) -> str:
    """Ctrl+C: the supervisor and its child stop, exit status 0; returns stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


@pytest.fixture
def first_version(tmp_path: Path, start: Start) -> tuple[Path, subprocess.Popen[str], int]:
    """webapp.py answering "first" under --reload: its source, the process and the port."""
    source = write_app(tmp_path, "first")
    proc, port = reloading("webapp:app", tmp_path, start)
    # The child may still be importing: the backlog holds the first requests meanwhile.
    poll(port, lambda answer: answer.endswith(b"first"), "the first version")
    return source, proc, port


def test_reload_restarts_on_change_and_keeps_the_address(
    first_version: tuple[Path, subprocess.Popen[str], int],
) -> None:
    source, proc, port = first_version
    save(source, APP.format(text="second"))
    poll(port, lambda answer: answer.endswith(b"second"), "the second version", touch=source)
    assert "webapp.py changed, restarting" in interrupted(proc)


def test_load_app_follows_dotted_attributes_and_defaults_to_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_app(tmp_path, name="cli_loaded_app")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = load_app("cli_loaded_app")
    assert module is load_app("cli_loaded_app:app")
    assert callable(load_app("cli_loaded_app:Holder.wsgi"))
    with pytest.raises(AppLoadError, match="has no attribute 'missing'"):
        load_app("cli_loaded_app:missing")
    with pytest.raises(AppLoadError, match="is not a WSGI callable"):
        load_app("cli_loaded_app:not_callable")
    with pytest.raises(AppLoadError, match="expected module:attr"):
        load_app(":app")


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("microwsgi")
    assert main([]) == 2
    assert "run" in capsys.readouterr().err


# -- app references: path/to/app.py, module without :attr ---------------------------------------

NAMED_APPS = textwrap.dedent(
    """
    def _answer(text):
        def wsgi(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [text.encode()]
        return wsgi

    {names}
    """
)


def write_named(path: Path, **objects: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = "\n".join(f"{name} = _answer({text!r})" for name, text in objects.items())
    path.write_text(NAMED_APPS.format(names=names))
    return path


def serve_and_fetch(start: Start, *args: str, cwd: Path) -> tuple[bytes, str]:
    """Run `microwsgi run ARGS` on a free port, GET /, stop it: (body, stderr)."""
    proc = start("run", *args, "--host", "127.0.0.1", "--port", "0", cwd=cwd)
    body = fetch(listening_port(proc))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return body, err


def test_run_a_file_serves_its_server_from_any_directory(tmp_path: Path, start: Start) -> None:
    write_named(tmp_path / "project" / "site_app.py", server="the server", app="the app")
    (tmp_path / "elsewhere").mkdir()
    body, err = serve_and_fetch(start, "../project/site_app.py", cwd=tmp_path / "elsewhere")
    assert body.endswith(b"the server")
    assert "microwsgi: serving site_app:server\n" in err


def test_run_a_file_falls_back_to_app_and_takes_an_attr(tmp_path: Path, start: Start) -> None:
    write_named(tmp_path / "only_app.py", app="the app", other="other")
    body, err = serve_and_fetch(start, "only_app.py", cwd=tmp_path)
    assert body.endswith(b"the app") and "serving only_app:app" in err
    body, err = serve_and_fetch(start, "only_app.py:other", cwd=tmp_path)
    assert body.endswith(b"other") and "serving only_app:other" in err


def test_run_a_module_prefers_server_and_says_so(tmp_path: Path, start: Start) -> None:
    write_named(tmp_path / "pkg_cli" / "web.py", server="the server", app="the app")
    body, err = serve_and_fetch(start, "pkg_cli.web", cwd=tmp_path)
    assert body.endswith(b"the server")
    assert "microwsgi: serving pkg_cli.web:server\n" in err


def test_a_file_in_a_package_is_imported_as_part_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cli_pkg_rel"
    write_named(package / "answers.py", server="relative import works")
    (package / "__init__.py").write_text("")
    (package / "site.py").write_text("from .answers import server\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path.parent)
    found = find_app(str(package / "site.py"))
    assert found.name == "cli_pkg_rel.site:server"
    assert found.app({}, lambda status, headers: None) == [b"relative import works"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (
            "examples/hello",
            "'examples/hello' is not a Python file (a path must end in .py): "
            "did you mean examples/hello.py?",
        ),
        ("missing/app.py", "no such file: "),
        (
            "neither.py",
            "neither.py has neither 'server' nor 'app': name the object, e.g. neither.py:api",
        ),
    ],
)
def test_app_reference_mistakes_are_one_line_naming_the_fix(
    tmp_path: Path, reference: str, message: str
) -> None:
    write_named(tmp_path / "examples" / "hello.py", server="hello")
    write_named(tmp_path / "neither.py", api="api")
    done = run_command("run", reference, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"microwsgi: {message}") and done.stderr.count("\n") == 1


# -- --reload with an app that does not import -----------------------------------------------------


def poll(port: int, until: Callable[[bytes], bool], what: str, touch: Path | None = None) -> bytes:
    """GET / until `until(answer)`; fail naming `what` after 30 s. Each request must be
    answered (fetch has a 5 s socket timeout): a hang fails the test.

    With `touch`, the file is given a newer mtime before each retry: the reloader's watcher
    takes its first look at the files in a thread of its own, and a change saved before that
    look would otherwise go unnoticed.
    """
    deadline = time.monotonic() + 30
    answer = b""
    while time.monotonic() < deadline:
        answer = fetch(port)
        if until(answer):
            return answer
        if touch is not None:
            os.utime(touch, ns=(time.time_ns(), time.time_ns() + 10**9))
        time.sleep(0.1)
    pytest.fail(f"no {what} within 30 s; last answer: {answer!r}")


def save(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a visibly newer mtime


BROKEN = "x = 1\ndef (:\n"


def test_reload_answers_an_import_error_with_a_500_naming_it_then_recovers(
    first_version: tuple[Path, subprocess.Popen[str], int],
) -> None:
    source, proc, port = first_version
    save(source, BROKEN)
    is_500 = lambda answer: answer.startswith(b"HTTP/1.1 500")  # noqa: E731
    broken = poll(port, is_500, "500 for the broken file", touch=source)
    error = b"SyntaxError: invalid syntax (webapp.py, line 2)"
    assert error in broken
    requests_while_broken = 5
    for _ in range(requests_while_broken):  # every request meanwhile, answered at once
        answer = fetch(port)
        assert is_500(answer) and error in answer

    save(source, APP.format(text="fixed"))
    poll(port, lambda a: a.endswith(b"fixed"), "answer from the fixed version", touch=source)
    err = interrupted(proc)
    # Printed by each start of the broken version (one, unless a retried save restarted it
    # again), never once per request.
    printed = err.count(error.decode())
    assert 1 <= printed == err.count("answering 500 until a file changes") < requests_while_broken


def test_reload_starting_broken_answers_500_until_fixed(tmp_path: Path, start: Start) -> None:
    source = tmp_path / "webapp.py"
    source.write_text("import no_such_dependency_here\n")
    proc, port = reloading("webapp.py", tmp_path, start)
    broken = poll(port, lambda a: a.startswith(b"HTTP/1.1 500"), "500 for the broken import")
    assert b"ModuleNotFoundError: No module named 'no_such_dependency_here'" in broken
    save(source, APP.format(text="working"))
    poll(port, lambda a: a.endswith(b"working"), "answer once it is fixed", touch=source)
    err = interrupted(proc)
    assert err.count("No module named 'no_such_dependency_here'") == 1, err
