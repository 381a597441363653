"""Where to listen: a port given where the host goes, or outside 0-65535, is a clear error
before any socket is made (``start_server``, ``microwsgi run``), never a wrapped-around port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from microwsgi import Server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def never_served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the development server: these tests must fail before it is reached."""
    import microwsgi.app
    import microwsgi.server

    served: list[Any] = []
    monkeypatch.setattr(microwsgi.server, "serve", lambda app, **kw: served.append(kw))
    monkeypatch.setattr(microwsgi.app, "serve", lambda app, **kw: served.append(kw), raising=False)
    return served


def test_a_port_given_as_the_host_says_so_and_suggests_port(never_served: list[Any]) -> None:
    with pytest.raises(TypeError) as info:
        Server().start_server(8080)  # type: ignore[arg-type]
    message = str(info.value)
    assert "the first argument is the host" in message
    assert "start_server(port=8080)" in message
    assert never_served == []


@pytest.mark.parametrize("port", [65536, 99999, -1])
def test_a_port_outside_the_range_is_a_value_error_naming_it(
    never_served: list[Any], port: int
) -> None:
    with pytest.raises(ValueError, match=rf"port {port} is outside 0-65535"):
        Server().start_server("127.0.0.1", port)
    assert never_served == []


@pytest.mark.parametrize("port", ["8080", 8080.0, True, None])
def test_a_port_that_is_not_an_int_is_a_type_error(never_served: list[Any], port: Any) -> None:
    with pytest.raises(TypeError, match=r"start_server: port must be an int, got"):
        Server().start_server("127.0.0.1", port)


@pytest.mark.parametrize("port", [0, 1, 8080, 65535])
def test_ports_in_the_range_reach_the_server(never_served: list[Any], port: int) -> None:
    Server().start_server("127.0.0.1", port)
    assert never_served == [{"host": "127.0.0.1", "port": port, "listen_msg": False}]


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_cli_refuses_a_port_outside_the_range_in_one_line(tmp_path: Path, port: str) -> None:
    (tmp_path / "webapp.py").write_text("def app(environ, start_response): return []\n")
    done = subprocess.run(
        [sys.executable, "-m", "microwsgi", "run", "webapp:app", f"--port={port}"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"microwsgi: port {port} is outside 0-65535 (0 picks a free port)\n"
    assert done.stdout == ""
