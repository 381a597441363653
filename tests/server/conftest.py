"""Fixtures for the server tests: `start_engine` (an engine on a free port, stopped afterwards)
and `live`, the server under test for the suites that talk to it over sockets.

Each test that takes `live` runs twice: against the built-in server (`DevServer`, in this process)
and against a real gunicorn running microwsgi's worker class (marked e2e), so the socket-level
behaviour (keep-alive, pipelining, chunked bodies, 100-continue, limits, smuggling shapes,
timeouts, disconnects) is proven for both. Applications are named (tests/server/live_apps.py);
options are `ServerConfig`'s, mapped to gunicorn's settings or to the worker's MICROWSGI_*
variables. One gunicorn serves every test with the same options, for the whole session.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import live_apps
import pytest
from gunicorn_process import PLAIN_CONFIG, Gunicorn, stop_all
from server_live import LiveServer, StartEngine, StartLive, listening, running, serving
from tracing import Trace, TracedEngine

from microwsgi.server import Engine, Hooks, ServerConfig

HERE = Path(__file__).resolve().parent
WORKER = "microwsgi.workers.Worker"
# ServerConfig's options that gunicorn has no setting for: the worker reads them from these.
WORKER_VARIABLES = {
    "header_timeout": "MICROWSGI_HEADER_TIMEOUT",
    "io_timeout": "MICROWSGI_IO_TIMEOUT",
    "max_body_size": "MICROWSGI_MAX_BODY_SIZE",
}


@pytest.fixture
def start_engine() -> Iterator[StartEngine]:
    """`start_engine(app, hooks=None, multiplex=None, trace=None, **options)` -> (engine,
    port): an engine serving `app` from a thread on a free 127.0.0.1 port, stopped (and
    waited for) when the test ends. With a `trace` (tracing.Trace), the engine is a
    `TracedEngine` whose thread strategy reports its scheduling steps to it."""
    with contextlib.ExitStack() as stack:

        def start(
            app: Any,
            *,
            hooks: Hooks | None = None,
            multiplex: bool | None = None,
            trace: Trace | None = None,
            **options: Any,
        ) -> tuple[Engine, int]:
            sock = listening()
            options.setdefault("access_log", False)
            config = ServerConfig(**options)
            engine = (
                Engine(app, [sock], config, hooks, multiplex=multiplex)
                if trace is None
                else TracedEngine(app, [sock], config, hooks, multiplex=multiplex, trace=trace)
            )
            stack.enter_context(running(engine))
            return engine, sock.getsockname()[1]

        yield start


def gunicorn_settings(options: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, str], int]:
    """Command-line settings, environment and threads for `ServerConfig` options."""
    options = dict(options)
    options.pop("access_log", None)  # gunicorn's access log is off unless asked for
    threads = options.pop("threads", 8)
    # gunicorn's keepalive is whole seconds; 5 is the built-in server's default.
    settings = (f"--keep-alive={math.ceil(options.pop('keepalive_timeout', 5))}",)
    env = {WORKER_VARIABLES[name]: str(options.pop(name)) for name in list(options)
           if name in WORKER_VARIABLES}  # fmt: skip
    if options:
        pytest.fail(f"no gunicorn setting for the server option(s) {sorted(options)}")
    return settings, env, threads


@pytest.fixture(scope="session")
def shared_gunicorns() -> Iterator[dict[str, tuple[Gunicorn, Path]]]:
    started: dict[str, tuple[Gunicorn, Path]] = {}
    yield started
    stop_all([server for server, _ in started.values()])


@pytest.fixture(params=["builtin", pytest.param("gunicorn", marks=pytest.mark.e2e)])
def live(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    shared_gunicorns: dict[str, tuple[Gunicorn, Path]],
) -> Iterator[StartLive]:
    """`live("echo", **options)` serves the named application of live_apps.py."""
    caplog.set_level(logging.INFO, "microwsgi.server")
    if request.param == "builtin":
        directory = tmp_path / "live"
        directory.mkdir()
        monkeypatch.setenv(live_apps.DIR_VARIABLE, str(directory))
        with contextlib.ExitStack() as stack:

            def start_builtin(app: str, **options: Any) -> LiveServer:
                options.setdefault("access_log", False)
                server = stack.enter_context(serving(live_apps.APPS[app], **options))
                return LiveServer("builtin", server.port, directory, lambda: caplog.text)

            yield start_builtin
        return

    def start_gunicorn(app: str, **options: Any) -> LiveServer:
        key = repr(sorted(options.items()))
        if key not in shared_gunicorns:
            directory = tmp_path_factory.mktemp("live-gunicorn")
            settings, env, threads = gunicorn_settings(options)
            server = Gunicorn(
                "live_apps:app",
                HERE,
                directory / "logs",
                worker_class=WORKER,
                threads=threads,
                config=PLAIN_CONFIG,
                options=settings,
                # live_apps imports the suite's helpers, which import tests/ modules.
                env={**env, live_apps.DIR_VARIABLE: str(directory), "PYTHONPATH": str(HERE.parent)},
            )
            shared_gunicorns[key] = (server, directory)
            (directory / live_apps.CHOSEN).write_text(app)
            server.start()
        server, directory = shared_gunicorns[key]
        (directory / live_apps.CHOSEN).write_text(app)
        (directory / live_apps.EVENTS).unlink(missing_ok=True)
        start = len(server.log())
        return LiveServer("gunicorn", server.port, directory, lambda: server.log()[start:])

    yield start_gunicorn
