"""The test suite on a fresh machine: what needs nginx, wrk, openssl, systemd-socket-activate or
podman skips there, naming it, and fails instead under CI (``MICROWSGI_REQUIRE_TOOLS=1``)."""

from __future__ import annotations

import os
import re
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
    source = (Path(__file__).resolve().parents[1] / CONTAINER_TEST).read_text()
    tests = len(re.findall(r"^def test_", source, re.M))
    done = run_pytest([CONTAINER_TEST])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{tests} skipped" in done.stdout
    assert "podman is not installed" in done.stdout
    assert "apt-get install podman" in done.stdout
    done = run_pytest([CONTAINER_TEST], **{tools.REQUIRE_ENV: "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{tests} errors" in done.stdout  # the fixture fails, before any test runs
    assert f"{tools.REQUIRE_ENV}=1 requires it" in done.stdout


def test_a_test_needing_a_program_must_be_marked_e2e(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("e2e") is None
    with pytest.raises(pytest.fail.Exception, match="needs wrk but is not marked e2e"):
        tools.require_program("wrk", "a load test")


# The optional extras: a core install (`pip install -e .` and pytest) runs the suite to the end.


@pytest.fixture
def fresh_machine(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(tools.REQUIRE_ENV, raising=False)
    return monkeypatch


def test_a_missing_extra_skips_naming_it(fresh_machine: pytest.MonkeyPatch) -> None:
    fresh_machine.setitem(sys.modules, "jinja2", None)  # import jinja2 raises, as uninstalled
    with pytest.raises(
        pytest.skip.Exception, match=r"needs jinja2: pip install 'microwsgi\[templates\]'"
    ):
        tools.require_extra("jinja2")


def test_under_ci_a_missing_extra_is_a_failure(fresh_machine: pytest.MonkeyPatch) -> None:
    fresh_machine.setitem(sys.modules, "pydantic", None)
    fresh_machine.setenv(tools.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"microwsgi\[validation\].*requires it"):
        tools.require_extra("pydantic")


def test_a_module_that_needs_a_missing_extra_skips_naming_the_extra(
    fresh_machine: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in sys.modules if name.startswith("microwsgi.gunicorn")]:
        fresh_machine.delitem(sys.modules, name)
    fresh_machine.setitem(sys.modules, "gunicorn", None)
    with pytest.raises(pytest.skip.Exception, match=r"pip install 'microwsgi\[gunicorn\]'"):
        tools.require_extra("microwsgi.gunicorn.adapter")


def test_an_installed_extra_is_returned_and_other_import_errors_are_raised() -> None:
    assert tools.require_extra("werkzeug.test").__name__ == "werkzeug.test"
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        tools.require_extra("no_such_module")


def test_a_folder_named_like_a_missing_extra_is_not_taken_for_it(
    fresh_machine: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As tests/gunicorn/ on sys.path is, without gunicorn: an empty namespace package.
    (tmp_path / "extra_pkg").mkdir()
    fresh_machine.syspath_prepend(str(tmp_path))
    fresh_machine.setitem(tools.EXTRAS, "extra_pkg", "test")
    fresh_machine.delitem(sys.modules, "extra_pkg", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs extra_pkg"):
        tools.require_extra("extra_pkg")


def test_a_block_whose_import_error_names_an_extra_skips_and_only_that(
    fresh_machine: pytest.MonkeyPatch,
) -> None:
    named = ImportError(
        "server.metrics() needs prometheus_client: pip install 'microwsgi[metrics]'"
    )
    skipped = pytest.raises(pytest.skip.Exception, match=r"README.md, block 3 needs .*\[metrics\]")
    with skipped, tools.extras_may_be_missing("README.md, block 3"):
        raise named
    raised = pytest.raises(ImportError, match="cannot import name 'nothing'")
    with raised, tools.extras_may_be_missing("README.md, block 4"):
        from microwsgi import nothing  # type: ignore[attr-defined]  # noqa: F401
    tools.extras_missing("no block", [])  # nothing missing: returns


def test_every_extra_named_is_one_pyproject_defines() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0]
    defined = set(re.findall(r"^(\w+) = \[", section, re.MULTILINE))
    assert set(tools.EXTRAS.values()) <= defined


def test_a_name_missing_from_an_installed_package_is_no_missing_extra(
    fresh_machine: pytest.MonkeyPatch,
) -> None:
    fresh_machine.setitem(tools.EXTRAS, "werkzeug", "test")  # as if werkzeug came with an extra
    with pytest.raises(ImportError) as raised:
        from werkzeug import no_such_name  # type: ignore[attr-defined]  # noqa: F401
    assert raised.value.name == "werkzeug" and tools.missing_extra(raised.value) is None
    with pytest.raises(ImportError, match="no_such_name"):
        tools.require_extra("werkzeug.no_such_name")
