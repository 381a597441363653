"""The test suite on a fresh machine: what needs nginx, wrk, openssl, systemd-socket-activate or
podman skips there, naming it, and fails instead under CI (``MICROWSGI_REQUIRE_TOOLS=1``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tools

REPO_ROOT = Path(__file__).resolve().parent.parent
# One test per program: nginx (the shipped site checked by nginx -t), wrk (two benchmarks) and
# systemd-socket-activate (the shipped units' socket activation).
NEEDING_PROGRAMS = [
    "tests/e2e/test_nginx.py::test_shipped_site_is_valid_as_it_is",
    "tests/e2e/test_worker_listeners.py::test_systemd_socket_activation_with_the_shipped_units",
    "tests/test_benchmarks_smoke.py::test_wire_runs_gunicorn_and_wrk_without_errors",
    "tests/test_benchmarks_smoke.py::test_devserver_section_reports_the_dev_server_benchmark",
]


# Its five tests share the image (a module fixture), which asks for the programs first.
CONTAINER_TEST = "tests/e2e/test_container.py"


def run_pytest(tests: list[str] = NEEDING_PROGRAMS, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != tools.REQUIRE_ENV}
    environ[tools.HIDE_ENV] = "nginx,wrk,openssl,systemd-socket-activate,podman,runc,debootstrap"
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_without_the_programs_their_tests_skip_naming_program_and_package() -> None:
    done = run_pytest()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 skipped" in done.stdout
    assert "nginx is not installed" in done.stdout
    assert "apt-get install nginx" in done.stdout
    assert done.stdout.count("wrk is not installed") == 2
    assert "apt-get install wrk" in done.stdout
    assert "systemd-socket-activate is not installed" in done.stdout
    assert "apt-get install systemd" in done.stdout


def test_under_ci_a_missing_program_is_a_failure() -> None:
    done = run_pytest(**{tools.REQUIRE_ENV: "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 failed" in done.stdout
    assert f"{tools.REQUIRE_ENV}=1 requires it" in done.stdout


def test_without_podman_the_container_test_skips_naming_it_and_fails_under_ci() -> None:
    done = run_pytest([CONTAINER_TEST])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 skipped" in done.stdout
    assert "podman is not installed" in done.stdout
    assert "apt-get install podman" in done.stdout
    done = run_pytest([CONTAINER_TEST], **{tools.REQUIRE_ENV: "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "5 errors" in done.stdout  # the fixture fails, before any test runs
    assert f"{tools.REQUIRE_ENV}=1 requires it" in done.stdout


def test_a_test_needing_a_program_must_be_marked_e2e(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("e2e") is None
    with pytest.raises(pytest.fail.Exception, match="needs wrk but is not marked e2e"):
        tools.require_program("wrk", "a load test")
