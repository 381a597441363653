"""The package as installed: its version, and what `import microwsgi` offers."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

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
