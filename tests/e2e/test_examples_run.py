"""Each example runs both ways its docstring says: `python examples/NAME.py` and under gunicorn.

An example in a folder of its own (``notes/app``) is served by gunicorn from that folder; the
notes example keeps its SQLite file in the test's temporary directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import (
    EXAMPLES,
    REPO,
    START_TIMEOUT,
    Gunicorn,
    accepts_connections,
    fetch,
    free_port,
    stop_process,
    wait_until,
)
from tools import require_extra

pytestmark = pytest.mark.e2e

# One request per example that shows it is up and answering with its own routes.
EXAMPLE_REQUESTS = [
    pytest.param("hello", "/hello/ada", 200, id="hello"),
    pytest.param("todos", "/todos", 200, id="todos"),
    pytest.param("auth", "/me", 401, id="auth"),
    pytest.param("mounted", "/flask/", 200, id="mounted"),
    pytest.param("streaming", "/count?n=2", 200, id="streaming"),
    pytest.param("library", "/api/v1/books/dune", 200, id="library"),
    pytest.param("notes/app", "/signin", 200, id="notes"),
]

# The package each example needs beyond the core install, from one of microwsgi's extras.
EXTRA_NEEDED = {"todos": "pydantic", "mounted": "flask", "notes/app": "jinja2"}


def require_extra_of(name: str) -> None:
    """Returns when the example runs here; else skips (or fails under CI) naming the extra."""
    if name in EXTRA_NEEDED:
        require_extra(EXTRA_NEEDED[name])


def example_env(tmp_path: Path) -> dict[str, str]:
    """What the examples read from the environment, pointed at the test's own files."""
    return {"NOTES_DB": str(tmp_path / "notes.sqlite3")}


@pytest.mark.parametrize(("name", "path", "status"), EXAMPLE_REQUESTS)
def test_runs_on_the_built_in_server(tmp_path: Path, name: str, path: str, status: int) -> None:
    require_extra_of(name)
    port = free_port()
    env = {**os.environ, **example_env(tmp_path), "HOST": "127.0.0.1", "PORT": str(port)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    output = tmp_path / "output.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py")], env=env, stdout=sink, stderr=sink
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"examples/{name}.py exited:\n{output.read_text()}")
            return accepts_connections(port)

        wait_until(up, START_TIMEOUT, f"examples/{name}.py to listen")
        assert fetch(port, path).status == status
    finally:
        # The built-in server stops cleanly on SIGTERM, as under a process manager.
        code = stop_process(proc, signal.SIGTERM)
    assert code == 0, output.read_text()


@pytest.mark.parametrize(("name", "path", "status"), EXAMPLE_REQUESTS)
def test_runs_under_gunicorn(
    gunicorn: Callable[..., Gunicorn], tmp_path: Path, name: str, path: str, status: int
) -> None:
    require_extra_of(name)
    folder, _, module = name.rpartition("/")
    app = gunicorn(f"{module}:server", chdir=EXAMPLES / folder, env=example_env(tmp_path))
    assert fetch(app.port, path).status == status
