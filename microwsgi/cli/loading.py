"""The app reference ``microwsgi run APP`` takes, found and imported: the app object to serve.

An app reference is ``module``, ``module:attr`` (dotted attributes are followed),
``path/to/app.py`` or ``path/to/app.py:attr``. Without ``attr`` the module's ``server`` is
served, else its ``app`` (every page of the docs names the object ``server``; ``app`` is the
WSGI convention). A module is imported from the working directory, as ``python -m`` would; a
file from its own directory, or from the top of the package it belongs to (the folders holding
``__init__.py``), so that its own imports work as they do when it is run as a script.

Every failure a user can cause is an `AppLoadError` whose message is one line; ``summary``
names the exception type and message when the module itself failed (the ``--reload`` stand-in
answers with it). Parsing the command line and serving are ``commands.py``'s.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

__all__: list[str] = []

DEFAULT_NAMES = ("server", "app")


class AppLoadError(Exception):
    """The app reference could not be loaded; the message is one line for the user."""

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message


class LoadedApp(NamedTuple):
    """The app an app reference names, and ``module:attr`` saying which object it is."""

    app: Callable[..., Any]
    name: str


def load_app(reference: str) -> Callable[..., Any]:
    """The WSGI callable `reference` names (see the module docstring for the forms)."""
    return find_app(reference).app


def find_app(reference: str) -> LoadedApp:
    """Import the module `reference` names and find its app; raises `AppLoadError`."""
    source, _, attr = reference.partition(":")
    if not source:
        raise AppLoadError(
            f"invalid app reference {reference!r}: expected module:attr, module or path/to/app.py"
        )
    module_name = _module_for_file(source) if _is_path(source) else source
    if not _is_path(source) and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = _import(module_name, source)
    if not attr:
        attr = next((name for name in DEFAULT_NAMES if hasattr(module, name)), "")
        if not attr:
            raise AppLoadError(
                f"{source} has neither 'server' nor 'app': name the object, e.g. {source}:api"
            )
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        kind = type(obj).__name__
        raise AppLoadError(f"{module_name}:{attr} is not a WSGI callable (a {kind})")
    return LoadedApp(obj, f"{module_name}:{attr}")


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source


def _module_for_file(path: str) -> str:
    """Make the file at `path` importable and return its module name (Flask's rule)."""
    if not path.endswith(".py"):
        hint = f": did you mean {path}.py?" if os.path.isfile(f"{path}.py") else ""
        raise AppLoadError(f"{path!r} is not a Python file (a path must end in .py){hint}")
    real = os.path.realpath(path)
    if not os.path.isfile(real):
        raise AppLoadError(f"no such file: {os.path.abspath(path)!r}")
    directory, filename = os.path.split(real)
    parts = [] if filename == "__init__.py" else [filename[:-3]]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return ".".join(parts)


def _import(module_name: str, source: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            where = "its file was found" if _is_path(source) else "run from the folder holding it"
            raise AppLoadError(
                f"cannot import {module_name!r}: no such module ({where}, or give the file: "
                "microwsgi run path/to/app.py)"
            ) from None
        summary = _one_line(exc)
    except Exception as exc:  # SyntaxError included: its str() names the file and line
        summary = _one_line(exc)
    raise AppLoadError(f"error importing {module_name!r}: {summary}", summary)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
