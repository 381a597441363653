"""Fixtures for the soak and the live fuzz: durations from the command line, servers under test.

The servers are real processes started by `benchmarks/soak_targets.py` (the same code the
benchmark run uses); `soak_support.SOAK_TARGETS` lists the ones the tests run against. Another
server joins with one function in `soak_targets.TARGETS` and its name there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from soak_support import StartServer
from tools import require_extra

from benchmarks.soak_targets import RunningServer, Settings, start_target, unavailable

# Beyond the traffic itself: starting the server, the checks afterwards, a slow machine.
TIMEOUT_MARGIN = 240.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here may run as long as the durations asked for, plus a margin."""
    here = Path(__file__).parent
    longest = max(config.getoption("--soak-seconds"), config.getoption("--fuzz-seconds"))
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(longest + TIMEOUT_MARGIN))


@pytest.fixture(scope="session")
def soak_seconds(pytestconfig: pytest.Config) -> float:
    return float(pytestconfig.getoption("--soak-seconds"))


@pytest.fixture(scope="session")
def fuzz_seconds(pytestconfig: pytest.Config) -> float:
    return float(pytestconfig.getoption("--fuzz-seconds"))


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """`start_server(target, **settings)`: a ready server; stopped (then killed) at the end."""
    started: list[RunningServer] = []

    def start(target: str, **settings: Any) -> RunningServer:
        if target.startswith("gunicorn"):
            # Asked for as an extra (skipped, or failed under CI): `unavailable` would take
            # tests/gunicorn/ for the package, an empty namespace package on sys.path.
            require_extra("gunicorn.app.wsgiapp")
        reason = unavailable(target)
        if reason is not None:
            pytest.skip(reason)
        server = start_target(target, tmp_path_factory.mktemp(target), Settings(**settings))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
