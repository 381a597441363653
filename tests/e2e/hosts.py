"""Several hosts on one machine: network namespaces joined by veth pairs to a bridge, for
tests/e2e/test_several_hosts.py.

Each host is a network namespace with its loopback, one interface on the bridge and an address
in 198.51.100.0/24 (TEST-NET-2, RFC 5737: documentation only, so nothing outside could
answer); there is no default route and no link to the machine's own interfaces, so traffic
stays between the namespaces. Names carry the test process's pid, so two runs never meet.
`Hosts.close()` kills every process started in them and deletes every namespace, whatever
happened before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from gunicorn_process import REPO
from tools import REQUIRE_ENV, require_program

NETWORK = "198.51.100"
WAIT = 30.0  # seconds: every wait here is bounded


def require_namespaces() -> str:
    """The `ip` program, when this process may make network namespaces; else skip (or fail
    where MICROWSGI_REQUIRE_TOOLS=1), naming the reason."""
    ip = require_program("ip", "the several-hosts test's network namespaces")
    reason = None
    if os.geteuid() != 0:
        reason = "ip netns needs root (the several-hosts test makes network namespaces)"
    else:
        probe = f"mw-probe-{os.getpid()}"
        made = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True)
        subprocess.run([ip, "netns", "del", probe], capture_output=True)
        if made.returncode != 0:
            reason = f"ip netns add is refused here: {made.stderr.strip()}"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it", pytrace=False)
        pytest.skip(reason)
    return ip


class Hosts:
    """Namespaces named ``mw<pid>-<host>`` on one bridge; processes started in them."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.tag = f"mw{os.getpid() % 100000}"
        self.switch = f"{self.tag}-sw"
        self.addresses: dict[str, str] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._made: list[str] = []

    def run(self, *args: str, namespace: str | None = None) -> None:
        prefix = ["-n", namespace] if namespace else []
        done = subprocess.run([self.ip, *prefix, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def add_switch(self) -> None:
        self.run("netns", "add", self.switch)
        self._made.append(self.switch)
        self.run("link", "add", "br0", "type", "bridge", namespace=self.switch)
        self.run("link", "set", "br0", "up", namespace=self.switch)

    def add_host(self, host: str, number: int) -> str:
        """A namespace for `host` at 198.51.100.`number`, on the bridge; its address."""
        name = self.namespace(host)
        self.run("netns", "add", name)
        self._made.append(name)
        port = f"p{number}"  # the bridge's side, in the switch's namespace
        self.run("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name,
                 namespace=self.switch)  # fmt: skip
        self.run("link", "set", port, "master", "br0", namespace=self.switch)
        self.run("link", "set", port, "up", namespace=self.switch)
        address = f"{NETWORK}.{number}"
        self.run("addr", "add", f"{address}/24", "dev", "eth0", namespace=name)
        self.run("link", "set", "eth0", "up", namespace=name)
        self.run("link", "set", "lo", "up", namespace=name)
        self.addresses[host] = address
        return address

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        return [self.ip, "netns", "exec", self.namespace(host), *argv]

    def start(
        self, host: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`argv` running in `host`'s namespace, in a process group of its own."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.command(host, argv),
                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(proc)
        return proc

    def python(self, host: str, code: str, *args: str, timeout: float = WAIT) -> str:
        """Run Python `code` in `host`'s namespace to its end; its stdout."""
        done = subprocess.run(
            self.command(host, [sys.executable, "-c", code, *args]),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"python in {host} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def wait_listening(self, host: str, address: str, port: int) -> None:
        self.python(host, _WAIT_LISTENING, address, str(port), str(WAIT), timeout=WAIT + 5)

    @staticmethod
    def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    @staticmethod
    def wait_exit(proc: subprocess.Popen[bytes], timeout: float = WAIT) -> int:
        return proc.wait(timeout)

    def close(self) -> None:
        """Kill everything started, then delete every namespace (also after a failure)."""
        for proc in self.processes:
            if proc.poll() is None:
                self.signal_group(proc, signal.SIGKILL)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for name in reversed(self._made):
            # A process that escaped its group would keep the namespace alive: kill it too.
            pids = subprocess.run([self.ip, "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split()  # fmt: skip
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run([self.ip, "netns", "del", name], capture_output=True)
        self._made.clear()

    def left_behind(self) -> list[str]:
        listed = subprocess.run([self.ip, "netns", "list"], capture_output=True, text=True)
        return [line for line in listed.stdout.splitlines() if line.startswith(f"{self.tag}-")]


_WAIT_LISTENING = """
import socket, sys, time
address, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while True:
    try:
        socket.create_connection((address, port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"nothing listens on {address}:{port} after {limit} s")
        time.sleep(0.05)
"""
