"""Programs from outside the venv that some tests drive (nginx, wrk, openssl,
systemd-socket-activate, valgrind, podman, chromium...) and Python packages from microwsgi's
optional extras (Jinja2, pydantic, gunicorn...): found or explained; root, for the tests that
need it; whether the machine has an IPv6 loopback; and the `microwsgi` command itself, run to
the end (`run_command`) or left running with every process it starts ended afterwards
(`microwsgi_process`).

On a machine without one of them, a test that needs it skips with a reason naming the program
and the Debian package that provides it, or the package and the extra that installs it (`pip
install 'microwsgi[templates]'`): a core install runs the suite to the end. With
``MICROWSGI_REQUIRE_TOOLS=1`` (``.ci/run`` sets it) a missing one fails the test instead, so CI
never skips silently. Every test that needs
such a program must carry the ``e2e`` mark, so that ``pytest -m "not e2e"`` runs with nothing
but the venv; `require_program` fails a test that asks without the mark.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ENV = "MICROWSGI_REQUIRE_TOOLS"
# Lets a test of this module play a machine without some programs ("nginx,wrk").
HIDE_ENV = "MICROWSGI_HIDE_PROGRAMS"
# program -> Debian package
PACKAGES = {
    "nginx": "nginx",
    "wrk": "wrk",
    "openssl": "openssl",
    "systemd-socket-activate": "systemd",
    "valgrind": "valgrind",
    "callgrind_control": "valgrind",
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "ip": "iproute2",
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "catatonit": "catatonit",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}
# importable top-level module -> the microwsgi extra that installs it (pyproject.toml); the
# packages only the tests drive (peer frameworks and parsers, API clients) come with `test`.
EXTRAS = {
    "jinja2": "templates",
    "pydantic": "validation",
    "prometheus_client": "metrics",
    "limits": "ratelimit",
    "redis": "ratelimit",
    "brotli": "brotli",
    "mkdocs": "docs",
    "flask": "examples",
    "gunicorn": "gunicorn",
    "h11": "test",
    "falcon": "test",
    "bottle": "test",
    "openapi_spec_validator": "test",
    "schemathesis": "test",
    "selenium": "test",
}
# How the package's own ImportErrors name the extra a feature needs.
_EXTRA_NAMED = re.compile(r"pip install 'microwsgi\[(\w+)\]'")
# nginx installs into sbin, which is often not on a normal user's PATH.
_SBIN = ("/usr/sbin", "/usr/local/sbin")

current_item: pytest.Item | None = None  # set by the root conftest for each test

# The source tree, put on the path of every `python -m microwsgi` the tests start.
ROOT = Path(__file__).resolve().parent.parent


def find_program(name: str) -> str | None:
    """The program's path, or None when it is not installed."""
    if name in os.environ.get(HIDE_ENV, "").split(","):
        return None
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


def require_program(name: str, purpose: str) -> str:
    """The path of `name`, needed `purpose`; skips (or fails under CI) when it is missing."""
    if current_item is not None and current_item.get_closest_marker("e2e") is None:
        pytest.fail(f"{current_item.nodeid} needs {name} but is not marked e2e", pytrace=False)
    found = find_program(name)
    if found is not None:
        return found
    package = PACKAGES[name]
    _missing(
        f"{name} is not installed ({purpose}; Debian package {package}: apt-get install {package})"
    )


def require_root(purpose: str) -> None:
    """Returns when the tests run as root, needed `purpose`; else skips (or fails under CI)."""
    if os.geteuid() != 0:
        _missing(f"not running as root ({purpose})")


def require_extra(module: str) -> ModuleType:
    """`module` imported: a package of one of microwsgi's extras (``"gunicorn.config"``), or a
    module that needs one (``"microwsgi.gunicorn.worker"``). When the extra's package is not
    installed, skips (or fails under CI) naming the extra to install.

    Works at a test module's top level too, where it skips the whole module. Any other
    ImportError (a broken install, a typo) is raised as it is.
    """
    try:
        found = importlib.import_module(module)
    except ImportError as error:
        extra = missing_extra(error)
        if extra is None:
            raise
        if error.name is None:  # microwsgi's own message, which names the extra
            _missing(str(error))
        _missing(f"needs {error.name.partition('.')[0]}: pip install 'microwsgi[{extra}]'")
    top = module.partition(".")[0]
    if top in EXTRAS and _not_installed(top):
        _missing(f"needs {top}: pip install 'microwsgi[{EXTRAS[top]}]'")
    return found


def missing_extra(error: ImportError) -> str | None:
    """The extra whose absence `error` reports: a package of one (`EXTRAS`) that is not
    installed, or microwsgi's own message for a feature (``pip install 'microwsgi[metrics]'``);
    else None (a name missing from an installed package, say)."""
    top = (error.name or "").partition(".")[0]
    if isinstance(error, ModuleNotFoundError) and top in EXTRAS and _not_installed(top):
        return EXTRAS[top]
    named = _EXTRA_NAMED.search(str(error))
    return named.group(1) if named else None


def _not_installed(package: str) -> bool:
    try:
        found = importlib.import_module(package)
    except ImportError:
        return True
    # A test folder of the same name (tests/gunicorn/) on sys.path imports as an empty
    # namespace package when the real one is missing.
    return getattr(found, "__file__", None) is None


@contextlib.contextmanager
def extras_may_be_missing(where: str) -> Iterator[None]:
    """Runs the block; an ImportError that names a missing extra skips (or fails under CI)
    the test, saying `where` needed it. Any other ImportError is raised as it is."""
    try:
        yield
    except ImportError as error:
        if missing_extra(error) is None:
            raise
        extras_missing(where, [error])


def extras_missing(where: str, errors: Sequence[ImportError]) -> None:
    """Skips (or fails under CI) when `errors` holds any of the ImportErrors `missing_extra`
    recognises, saying `where` needed the extras they name; returns when it holds none."""
    if errors:
        extras = ",".join(sorted({missing_extra(error) or "?" for error in errors}))
        found = "; ".join(str(error) for error in errors)
        _missing(f"{where} needs pip install 'microwsgi[{extras}]' ({found})")


def import_error_without(package: str, statement: str, setup: str = "") -> str:
    """The message of the ImportError that `statement` raises in a fresh interpreter where
    `package` cannot be imported, as in a venv without its extra ('' if none is raised);
    `setup` runs before, outside the check."""
    code = (
        f"import sys; sys.modules[{package!r}] = None\n{setup}\n"
        f"try:\n    {statement}\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def _missing(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
    # A test module that needs an extra asks for it on import: then the whole module skips.
    pytest.skip(reason, allow_module_level=True)


def has_ipv6_loopback() -> bool:
    """Whether ::1 can be bound here (containers often have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def run_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m microwsgi ARGS` run in `cwd` until it exits (at most 30 s), output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "microwsgi", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# Carried in the environment of every process a `microwsgi_process` starts, and so of the
# processes those start: `--reload` children, which have a session of their own.
TAG_ENV = "MICROWSGI_TEST_PROCESS"
_tags = itertools.count()


@contextlib.contextmanager
def process_tree(*argv: str, cwd: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`argv` started in `cwd` (stdout and stderr piped, as text; `env` added to ours, with the
    source tree on PYTHONPATH). At the end, also when the test failed, every process it started
    is killed, wherever it went (its session, and any process whose environment carries its
    tag), and its pipes are read to the end within 30 s: a process left behind holding them
    fails the test instead of hanging it."""
    tag = f"{os.getpid()}-{next(_tags)}"
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), TAG_ENV: tag, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        kill_tagged(tag)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def microwsgi_process(
    *args: str, cwd: Path, **env: str
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """`python -m microwsgi ARGS` as a `process_tree`: it and all it starts end with the test."""
    return process_tree(sys.executable, "-m", "microwsgi", *args, cwd=cwd, **env)


def kill_tagged(tag: str) -> None:
    """SIGKILL every process started with `TAG_ENV=tag` in its environment (Linux's /proc)."""
    entry = f"\0{TAG_ENV}={tag}\0".encode()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if entry in b"\0" + environ.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:  # gone meanwhile, or not ours to read
            continue
