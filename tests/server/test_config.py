"""Tests for microwsgi.server.config and the development server's own surface: one set of
defaults for `serve()`, `DevServer`, the CLI and `start_server`, options checked at once."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from server_live import Client, get, hello_app

from microwsgi import Server
from microwsgi.cli.commands import build_parser
from microwsgi.server import BindError, DevServer, ServerConfig
from microwsgi.server.config import DEFAULT_HOST, DEFAULT_PORT
from microwsgi.server.sockets import bind

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nope": 1}, "unknown server option(s): nope"),
        ({"threads": 0}, "threads must be at least 1"),
        ({"max_target": 0}, "max_target must be at least 1"),
        ({"max_request_line": 0}, "max_request_line must be at least 1"),
        ({"max_field_size": -5}, "max_field_size must be at least 1"),
        ({"max_connections": 0}, "max_connections must be at least 1"),
        ({"max_requests": 0}, "max_requests must be at least 1"),
        ({"max_body_size": -1}, "max_body_size must not be negative"),
        ({"header_timeout": 0}, "header_timeout must be a positive number"),
        ({"io_timeout": -1.0}, "io_timeout must be a positive number"),
        ({"shutdown_timeout": -1}, "shutdown_timeout must not be negative"),
        ({"keepalive_on_stop": -1}, "keepalive_on_stop must not be negative"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(
        (TypeError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        ServerConfig.from_options(**options)


def test_the_cli_takes_its_defaults_from_the_config() -> None:
    run = build_parser().parse_args(["run", "app:server"])
    config = ServerConfig()
    assert (run.host, run.port) == (DEFAULT_HOST, DEFAULT_PORT)
    assert run.threads == config.threads and run.max_body_size == config.max_body_size
    assert run.header_timeout == config.header_timeout
    assert run.keepalive_timeout == config.keepalive_timeout
    assert run.shutdown_timeout == config.shutdown_timeout


def test_the_seeds_start_server_defaults_are_the_servers() -> None:
    # start_server keeps the seed's signature (it cannot import the server to read them).
    parameters = inspect.signature(Server.start_server).parameters
    assert parameters["host"].default == DEFAULT_HOST
    assert parameters["port"].default == DEFAULT_PORT
    parameters = inspect.signature(DevServer).parameters
    assert (parameters["host"].default, parameters["port"].default) == (DEFAULT_HOST, DEFAULT_PORT)


def test_a_port_out_of_range_is_a_one_line_bind_error() -> None:
    with pytest.raises(BindError) as info:
        bind("127.0.0.1", 99999)
    assert str(info.value) == (
        "cannot listen on 127.0.0.1:99999: port 99999 is outside 0-65535 (0 picks a free port)"
    )


def test_an_unknown_host_is_a_one_line_bind_error() -> None:
    with pytest.raises(BindError) as info:
        bind("no-such-host.invalid", 0)
    assert str(info.value).startswith("cannot listen on no-such-host.invalid:0: ")
    assert "\n" not in str(info.value)


def test_dev_server_as_a_context_manager() -> None:
    with (
        DevServer(hello_app, "127.0.0.1", 0, access_log=False) as server,
        Client(server.port) as client,
    ):
        assert client.request(get()).status == 200
    with pytest.raises(OSError):
        Client(server.port, timeout=1)


READY_SCRIPT = """
import os, signal, sys, threading
sys.path.insert(0, {root!r})
from microwsgi.server import serve

def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]

ready = threading.Event()

def when_ready():
    ready.wait()
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=when_ready, daemon=True).start()
serve(app, "127.0.0.1", 0, ready=ready, access_log=False)
print("stopped", flush=True)
"""


def test_serve_sets_a_ready_event_once_listening(tmp_path: Path) -> None:
    script = tmp_path / "ready.py"
    script.write_text(READY_SCRIPT.format(root=str(ROOT)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ready", "stopped"]
