"""The package as installed: its version, and what `import microwsgi` offers."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
import tools

import microwsgi
from microwsgi.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert found is not None, "pyproject.toml has no version line"
    return found.group(1)


def test_version_is_the_installed_packages_and_pyprojects() -> None:
    assert microwsgi.__version__ == importlib.metadata.version("microwsgi")
    assert microwsgi.__version__ == _pyproject_version()


def test_cli_version_prints_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"microwsgi {microwsgi.__version__}\n"


def test_the_app_puts_itself_in_the_environ_as_microwsgi_app() -> None:
    import webtest

    seen: dict[str, object] = {}
    server = microwsgi.Server()
    server.register_handler("GET /", lambda request: seen.update(request["environ"]))
    webtest.TestApp(server).get("/", status=204)
    assert seen["microwsgi.app"] is server
    assert "microwsgi.server" not in seen  # that name is the server package and its logger


def test_middleware_is_importable_from_the_package() -> None:
    from microwsgi import cors, middleware, request_id, request_logger

    assert (cors, request_id, request_logger) == (
        middleware.cors,
        middleware.request_id,
        middleware.request_logger,
    )


def test_the_documented_names_of_moved_modules_still_work() -> None:
    from microwsgi.middleware import cors, request_id, request_logger

    assert callable(cors) and callable(request_id) and callable(request_logger)
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="microwsgi")
    assert script.value == "microwsgi.cli:main" and script.load() is main
    # Last, as it needs gunicorn (without it, the test skips here, naming the extra).
    workers = tools.require_extra("microwsgi.workers")
    assert workers.Worker is tools.require_extra("microwsgi.gunicorn").Worker  # `-k` alias
