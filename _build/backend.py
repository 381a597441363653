"""The build backend: setuptools', unchanged, but for one thing the compiled build needs.

``MICROWSGI_MYPYC=1 pip install .`` compiles the HTTP/1.1 protocol and the WSGI bridge with
mypyc (``setup.py`` says which modules); mypyc comes with mypy, which then has to be in the
build environment pip makes. These hooks add it there, and only then: a plain install builds
the pure-Python package exactly as setuptools alone would.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every hook setuptools provides

_MYPY = ["mypy>=1.10"]  # the version the test extra asks for: mypyc's compiler


def _compiling() -> list[str]:
    return _MYPY if os.environ.get("MICROWSGI_MYPYC") == "1" else []


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_compiling()]


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_compiling()]
