"""Connections spread across gunicorn's workers (microwsgi/gunicorn/shares.py): a burst of
connections opened at once, as wrk and a proxy's pool open theirs, is served by every worker,
not only by the one that woke first; and a worker that leaves a connection to another never
loses it. Real gunicorn, the app is tests/e2e/wsgi_app.py; no timing is asserted."""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import HERE, Gunicorn, open_files, wait_until

pytestmark = pytest.mark.e2e

WORKER = "microwsgi.workers.Worker"
PLAIN = HERE / "plain.conf.py"
WAIT = 20.0  # a guard against hanging, never what a test asserts
BURST = 8


def listener_inode(port: int) -> int:
    """The inode of the socket listening on 127.0.0.1:port (from /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            return int(fields[9])
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def watches(pid: int, inode: int) -> bool:
    """Whether an epoll set of process `pid` watches the socket `inode`: its engine is
    running and accepting (an epoll set's fdinfo lists each watched file's inode, in hex)."""
    wanted = f"ino:{inode:x}"
    for fd, target in open_files(pid).items():
        if target != "anon_inode:[eventpoll]":
            continue
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            if wanted in Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split():
                return True
    return False


def pids_over(connections: list[socket.socket]) -> list[int]:
    """GET /pid on each connection, kept alive: the worker that answered each."""
    for sock in connections:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
    pids = []
    for sock in connections:
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        assert answer.status == 200
        pids.append(int(answer.read().split()[0]))
    return pids


def burst(port: int) -> list[socket.socket]:
    """BURST connections opened back to back, before any request is sent."""
    return [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(BURST)]


def test_eight_connections_opened_at_once_are_served_by_both_workers(
    gunicorn: Callable[..., Gunicorn],
) -> None:
    app = gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN, workers=2, threads=8)
    workers, inode = app.worker_pids(), listener_inode(app.port)
    assert len(workers) == 2
    wait_until(lambda: all(watches(pid, inode) for pid in workers), WAIT, "both to accept")
    connections = burst(app.port)
    try:
        served = Counter(pids_over(connections))
        # Both workers answer, each on the connections it took; every connection answered.
        assert set(served) == set(workers), served
        assert sum(served.values()) == BURST
        # And in shares near even: 4 and 4, or 3 and 5 when one worker's loop was late to
        # wake (it is given DEFER_ACCEPT to take a connection left to it). The first worker
        # to wake used to take 7 or all 8 of them.
        assert min(served.values()) >= BURST // 4, served
        # Kept alive: the same connections again reach the same workers.
        assert Counter(pids_over(connections)) == served
    finally:
        for sock in connections:
            sock.close()


def test_with_one_worker_every_connection_of_a_burst_is_answered(
    gunicorn: Callable[..., Gunicorn],
) -> None:
    # No other worker to leave a connection to: the only one takes them all.
    app = gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN, workers=1, threads=2)
    connections = burst(app.port)
    try:
        assert pids_over(connections) == app.worker_pids() * BURST
    finally:
        for sock in connections:
            sock.close()
