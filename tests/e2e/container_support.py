"""Podman for the container test: a podman of the test's own, a Debian base image made with
debootstrap and cached between runs, and a build context that installs without a package index.

- `Podman` keeps everything under one temporary folder (`podman_home`: images, containers, state,
  locks, network configuration, build scratch) and meets this machine's quirks with its own
  containers.conf and flags, never by editing /etc: podman's default rlimits are refused
  (``default_ulimits = []``), crun refuses the hybrid cgroup layout (runc, cgroupfs).
- `import_debian_base` imports ``debootstrap --variant=minbase`` of bookworm with python3 and
  pip, made once and kept as a tarball under ``~/.cache/microwsgi/container/``
  (``$XDG_CACHE_HOME`` if set). The file is named after a hash of the recipe, so a changed recipe
  makes a new one, and it is made again when older than `BASE_MAX_AGE` so Debian's fixes reach
  it; older tarballs are deleted then.
- `build_context` is the repository as ``docker build .`` would send it, plus a wheelhouse made on
  the host with ``pip download`` for the base's Python: nothing inside a container reaches an
  index here, so the image is built with ``WHEELS`` (and no network at all).

Every command is bounded in time; what fails says which command and shows its output.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from gunicorn_process import REPO

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP = ("--variant=minbase", "--include=python3,python3-venv,python3-pip")
# Bump when the way the tarball is made changes, so that caches made the old way are replaced.
RECIPE_VERSION = 1
BASE_MAX_AGE = 30 * 24 * 3600.0
DEBOOTSTRAP_TIMEOUT = 600.0
PODMAN_TIMEOUT = 60.0
BUILD_TIMEOUT = 300.0
# Where the Dockerfile's build context finds the wheels (its WHEELS argument).
WHEELS = "wheels"
# What the Dockerfile installs, besides the package's own dependencies: its build backend (from
# pyproject.toml's build-system) and gunicorn (the Dockerfile's pip install line).
EXTRA_REQUIREMENTS = ("setuptools>=68", "gunicorn>=23")


def run(
    command: Sequence[str], timeout: float, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `command` to its end; fail the test with its output if it overruns, or if it fails
    and `check` is true.

    On overrun it gets SIGTERM first (debootstrap then unmounts what it mounted), SIGKILL later.
    """
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            pytest.fail(f"{command[0]} overran {timeout:.0f} s: {command}\n{out}{err[-4000:]}")
    if check and proc.returncode != 0:
        pytest.fail(f"{command[0]} failed ({proc.returncode}): {command}\n{out}{err[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@dataclass(frozen=True)
class Base:
    """A cached root filesystem tarball, and what pip needs to know to fetch wheels for it."""

    tarball: Path
    python: str  # "3.11"
    glibc: tuple[int, int]
    machine: str  # "x86_64"

    @property
    def key(self) -> str:
        return self.tarball.stem

    def platforms(self) -> list[str]:
        """The wheel platform tags its Python accepts (pip takes them exactly, not as minimums)."""
        major, newest = self.glibc
        tags = [f"manylinux_{major}_{minor}_{self.machine}" for minor in range(newest, 4, -1)]
        legacy = ["manylinux2014", "manylinux2010", "manylinux1"]
        return tags + [f"{name}_{self.machine}" for name in legacy]


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "microwsgi" / "container"


def import_debian_base(debootstrap: str, podman: Podman, name: str) -> Base:
    """Import the cached Debian base into `podman` as `name`, making it first if it is missing
    or stale. One test run at a time (another may be making or replacing it right now)."""
    architecture = run(["dpkg", "--print-architecture"], PODMAN_TIMEOUT).stdout.strip()
    recipe = json.dumps([RECIPE_VERSION, SUITE, MIRROR, DEBOOTSTRAP, architecture])
    key = f"{SUITE}-{architecture}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tarball, facts = directory / f"{key}.tar", directory / f"{key}.json"
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fresh = tarball.exists() and facts.exists()
        if not fresh or time.time() - tarball.stat().st_mtime > BASE_MAX_AGE:
            for old in directory.glob(f"{SUITE}-*"):
                old.unlink()
            _make_base(debootstrap, directory, tarball, facts)
        podman("import", str(tarball), name)
    known = json.loads(facts.read_text())
    return Base(tarball, known["python"], tuple(known["glibc"]), platform.machine())


def _make_base(debootstrap: str, directory: Path, tarball: Path, facts: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="rootfs-", dir=directory))
    try:
        rootfs = scratch / "rootfs"
        run([debootstrap, *DEBOOTSTRAP, SUITE, str(rootfs), MIRROR], DEBOOTSTRAP_TIMEOUT)
        # The downloaded packages and index: a container cannot reach the mirror to use them.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        versions = _installed_versions(rootfs, ("python3", "libc6"))
        python = ".".join(versions["python3"].split(".")[:2])
        glibc = [int(part) for part in re.findall(r"\d+", versions["libc6"])[:2]]
        partial = scratch / "base.tar"
        run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], DEBOOTSTRAP_TIMEOUT)
        facts.write_text(json.dumps({"python": python, "glibc": glibc}))
        partial.rename(tarball)  # complete, or absent
    finally:
        _remove_tree(scratch)


def _installed_versions(rootfs: Path, packages: Sequence[str]) -> dict[str, str]:
    """Versions from the root filesystem's dpkg database."""
    status = (rootfs / "var/lib/dpkg/status").read_text()
    found = {}
    for stanza in status.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version): (.+)$", stanza, re.M))
        if fields.get("Package") in packages:
            found[fields["Package"]] = fields["Version"]
    return found


def _remove_tree(path: Path) -> None:
    """Remove a debootstrap target, unmounting first whatever an interrupted run left mounted in
    it (/proc, /sys, device binds): removing through a mount would reach the host's files."""
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(f"{path}/")
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        run(["umount", "--lazy", mount], PODMAN_TIMEOUT)
    shutil.rmtree(path, ignore_errors=True)


class Podman:
    """A podman whose images, containers and state all live under `home`."""

    def __init__(self, home: Path, runtime: str) -> None:
        self.home = home
        for name in ("root", "run", "tmp", "networks", "scratch"):
            (home / name).mkdir()
        config = home / "containers.conf"
        config.write_text(
            "[containers]\n"
            "default_ulimits = []\n"
            # `podman logs` from a file of its own, whether journald runs here or not.
            'log_driver = "k8s-file"\n'
            "[engine]\n"
            'events_logger = "file"\n'
            f'events_logfile_path = "{home / "tmp" / "events.log"}"\n'
            # File locks under tmp_dir, not the shared memory segment every podman here uses.
            'lock_type = "file"\n'
            f'tmp_dir = "{home / "tmp"}"\n'
        )
        self.env = {**os.environ, "CONTAINERS_CONF": str(config), "TMPDIR": str(home / "scratch")}
        self.flags = [
            "--root", str(home / "root"),
            "--runroot", str(home / "run"),
            "--network-config-dir", str(home / "networks"),
            "--storage-driver", "overlay",
            "--runtime", runtime,
            "--cgroup-manager", "cgroupfs",
        ]  # fmt: skip

    def __call__(self, *args: str, timeout: float = PODMAN_TIMEOUT) -> str:
        """Run ``podman ARGS`` on this podman's storage; its standard output."""
        return run(["podman", *self.flags, *args], timeout, self.env).stdout

    def healthcheck(self, container: str) -> subprocess.CompletedProcess[str]:
        """``podman healthcheck run``: the image's HEALTHCHECK, run once inside the container
        (exit status 0, or 1 and "unhealthy")."""
        return run(
            ["podman", *self.flags, "healthcheck", "run", container],
            PODMAN_TIMEOUT,
            self.env,
            False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``podman ARGS`` without waiting for it; the caller waits."""
        command = ["podman", *self.flags, *args]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def log(self, container: str) -> str:
        """The container's log file: its standard output and error in the order they came, each
        line after a timestamp (``podman logs`` splits them into two streams, losing that order)."""
        path = self("container", "inspect", "--format", "{{.HostConfig.LogConfig.Path}}", container)
        return Path(path.strip()).read_text()

    def remove_all(self) -> None:
        """Every container (killed if running) and image: nothing stays mounted in `home`."""
        with contextlib.suppress(pytest.fail.Exception):
            self("rm", "--all", "--force", "--time", "0")
        with contextlib.suppress(pytest.fail.Exception):
            self("rmi", "--all", "--force")


@contextlib.contextmanager
def podman_home() -> Iterator[Path]:
    """A folder for a `Podman`, in the system's temporary directory (not pytest's, which keeps
    the last runs: an image store is hundreds of megabytes)."""
    home = Path(tempfile.mkdtemp(prefix="microwsgi-podman-"))
    try:
        yield home
    finally:
        if home.exists():
            _remove_tree(home)


def build_context(destination: Path, base: Base) -> Path:
    """The repository as the Dockerfile's build context, with a wheelhouse for `base` in it."""
    ignored = _dockerignore_top_level()
    shutil.copytree(
        REPO,
        destination,
        ignore=lambda folder, names: (
            [name for name in names if any(fnmatch.fnmatch(name, p) for p in ignored)]
            if Path(folder) == REPO
            else []
        ),
    )
    platforms = [option for tag in base.platforms() for option in ("--platform", tag)]
    run(
        [
            sys.executable, "-m", "pip", "download", "--quiet",
            "--dest", str(destination / WHEELS),
            "--only-binary=:all:", "--implementation", "cp", "--python-version", base.python,
            *platforms,
            f"{destination}[examples]", *EXTRA_REQUIREMENTS,
        ],
        BUILD_TIMEOUT,
    )  # fmt: skip
    return destination


def _dockerignore_top_level() -> list[str]:
    """The .dockerignore patterns that name top-level entries: no need to copy those (podman
    applies the whole file to the copy anyway)."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line for line in lines if line and line[0] not in "#!" and "/" not in line]
