"""Fixtures for the server tests: engines started on a free port and stopped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from server_live import StartEngine, listening, running

from microwsgi.server import Engine, Hooks, ServerConfig


@pytest.fixture
def start_engine() -> Iterator[StartEngine]:
    """`start_engine(app, hooks=None, multiplex=None, trace=None, **options)` -> (engine,
    port): an engine serving `app` from a thread on a free 127.0.0.1 port, stopped (and
    waited for) when the test ends. `trace` becomes its workers' `trace_for_tests`."""
    with contextlib.ExitStack() as stack:

        def start(
            app: Any,
            *,
            hooks: Hooks | None = None,
            multiplex: bool | None = None,
            trace: Callable[..., object] | None = None,
            **options: Any,
        ) -> tuple[Engine, int]:
            sock = listening()
            options.setdefault("access_log", False)
            engine = Engine(app, [sock], ServerConfig(**options), hooks, multiplex=multiplex)
            engine.workers.trace_for_tests = trace  # type: ignore[attr-defined]
            stack.enter_context(running(engine))
            return engine, sock.getsockname()[1]

        yield start
