"""`--reload`: run the server in a child process and start a fresh one when sources change.

The supervisor (the process the user started) binds the listening socket once and passes it
to each child, so the address never changes and connections that arrive during a restart
wait in the backlog instead of being refused. The child imports the app, serves on the
inherited socket, and watches the `.py` files of every module it has loaded; on a change it
stops gracefully and exits with `RESTART_CODE`. A child that fails (an import error while a
file is half-edited) is restarted once any `.py` file under the working directory changes.

A child never outlives its supervisor, however the supervisor ends (a signal it passes on, an
exception, SIGKILL, which it cannot pass on): the first thing a child does, before importing
the app, is `end_with_supervisor()`. On Linux the kernel sends the child SIGTERM when the
supervisor dies (`prctl(PR_SET_PDEATHSIG)`): nothing to poll, and it holds while the child is
busy importing or stuck in the app's code. Elsewhere a daemon thread compares the parent's pid
with the supervisor's every half second and sends the same SIGTERM. Either way SIGTERM is the
signal the supervisor itself passes on to stop a child: default action (exit at once) while the
app is importing, a graceful stop (bounded by `shutdown_timeout`) once it serves.

Polling modification times needs no dependency and no OS notification API; a few hundred
`stat` calls every half second cost nothing noticeable on a development machine.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import FrameType

RESTART_CODE = 3
ENV_FD = "MICROWSGI_RELOAD_FD"
ENV_SUPERVISOR = "MICROWSGI_RELOAD_SUPERVISOR"  # the supervisor's pid, for its children
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
INTERVAL = 0.5
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".mypy_cache"}
_MAX_TREE_FILES = 5000

log = logging.getLogger("microwsgi.server")


def _library_dirs() -> tuple[str, ...]:
    """Directories of the interpreter's own and installed packages, which are not watched."""
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return tuple(os.path.join(d, "") for d in dirs)


def module_files() -> set[str]:
    """The `.py` files of the loaded modules, except the standard library and site-packages."""
    skip = _library_dirs()
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py") and not path.startswith(skip):
            files.add(os.path.abspath(path))
    return files


def tree_files(root: str) -> set[str]:
    """`.py` files under `root` (bounded), for when no child is running to say what it uses."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        found.update(os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))
        if len(found) > _MAX_TREE_FILES:
            break
    return found


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class Watcher:
    """Calls `on_change(path)` once, from a daemon thread, when a watched file changes."""

    def __init__(
        self,
        on_change: Callable[[str], object],
        files: Callable[[], Iterable[str]] = module_files,
        interval: float = INTERVAL,
    ) -> None:
        self.on_change = on_change
        self.files = files
        self.interval = interval
        self.changed: str | None = None
        self._stop = threading.Event()
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._thread = threading.Thread(target=self._run, name="microwsgi-reload", daemon=True)

    def start(self) -> Watcher:
        """Take the files' current state as the baseline, then watch from a thread: a change
        made after `start()` returns is always seen."""
        self.check(self._stamps)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self, stamps: dict[str, tuple[int, int] | None]) -> str | None:
        """Update `stamps`; return the first file whose stamp differs from last time."""
        for path in self.files():
            stamp = _stamp(path)
            if path not in stamps:
                stamps[path] = stamp  # newly imported: its current state is the baseline
            elif stamps[path] != stamp:
                return path
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            changed = self.check(self._stamps)
            if changed is not None:
                self.changed = changed
                self.on_change(changed)
                return


def wait_for_change(root: str, stop: threading.Event) -> bool:
    """Block until a `.py` file under `root` changes (True) or `stop` is set (False)."""
    watcher = Watcher(lambda path: None, lambda: tree_files(root))
    stamps: dict[str, tuple[int, int] | None] = {}
    watcher.check(stamps)
    while not stop.wait(INTERVAL):
        if watcher.check(stamps) is not None:
            return True
    return False


def supervise(argv: list[str], sock: socket.socket) -> int:
    """Run `python -m microwsgi <argv>` children on `sock` until SIGINT/SIGTERM; returns 0."""
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None
    # Signals the running child has yet to be sent. A signal that comes while a child is
    # being started waits here for it (the handler cannot reach a child it has no handle
    # on yet); popleft() hands each signal to exactly one sender, the handler or the loop.
    pending: deque[int] = deque()

    def forward() -> None:
        while pending and child is not None and child.poll() is None:
            try:
                signum = pending.popleft()
            except IndexError:  # the handler, interrupting this loop, sent it
                return
            child.send_signal(signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        pending.append(signum)
        forward()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    fd = sock.fileno()
    sock.set_inheritable(True)
    env = {**os.environ, ENV_FD: str(fd), ENV_SUPERVISOR: str(os.getpid())}
    try:
        while not stop.is_set():
            # Its own session: a terminal's Ctrl+C reaches only us, and we pass it on once.
            child = subprocess.Popen(
                [sys.executable, "-m", "microwsgi", *argv],
                env=env,
                pass_fds=(fd,),
                start_new_session=True,
            )
            forward()
            code = child.wait()
            if stop.is_set():
                break
            if code == RESTART_CODE:
                log.info("restarting")
                continue
            print(
                f"microwsgi: the app exited with code {code}; restarting when a file changes",
                file=sys.stderr,
                flush=True,
            )
            if not wait_for_change(os.getcwd(), stop):
                break
        if child is not None:
            child.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        sock.close()
    return 0


def end_with_supervisor(supervisor: int, *, kernel: bool = True) -> None:
    """Have this process, a child of `supervise`, get SIGTERM when `supervisor` (its pid)
    ends; at once if it already has. Called first thing in the child, before the app is
    imported. `kernel=False` uses the portable watch even where Linux's prctl is there."""
    if not (kernel and _signal_on_parent_death(signal.SIGTERM)):
        threading.Thread(
            target=_watch_parent, args=(supervisor,), name="microwsgi-supervisor", daemon=True
        ).start()
    if os.getppid() != supervisor:  # it ended before we asked: no death left to hear of
        os.kill(os.getpid(), signal.SIGTERM)


def _signal_on_parent_death(signum: int) -> bool:
    """Ask Linux for `signum` when the parent dies; False where that cannot be asked.

    The kernel sends it when the thread that started us ends: `supervise` starts children
    from the supervisor's main thread, whose end is the supervisor's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # no libc to load, or a libc without prctl
        return False


def _watch_parent(supervisor: int) -> None:
    """The portable way: once we are someone else's child, the supervisor has ended."""
    while os.getppid() == supervisor:
        time.sleep(INTERVAL)
    os.kill(os.getpid(), signal.SIGTERM)
