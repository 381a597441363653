"""Programs from outside the venv that some tests drive (nginx, wrk, openssl,
systemd-socket-activate, valgrind, podman, chromium...): found or explained; root, for the tests
that need it; whether the machine has an IPv6 loopback; and the `microwsgi` command itself, run
to the end (`run_command`) or left running with every process it starts ended afterwards
(`microwsgi_process`).

On a machine without one of them, a test that needs it skips with a reason naming the program
and the Debian package that provides it. With ``MICROWSGI_REQUIRE_TOOLS=1`` (``.ci/run`` sets
it) a missing program fails the test instead, so CI never skips silently. Every test that needs
such a program must carry the ``e2e`` mark, so that ``pytest -m "not e2e"`` runs with nothing
but the venv; `require_program` fails a test that asks without the mark.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
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
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}
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


def _missing(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


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
