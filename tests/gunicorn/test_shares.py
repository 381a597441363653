"""microwsgi.gunicorn.shares without a running gunicorn: the load table of a master's workers.

Each worker of a real master is its own process; here a "worker" is a second view of the same
table (`copy.copy`: the shared memory is the same, the slot is the view's own), with the pid
of a process gone where a dead worker is needed. Spreading under a real gunicorn is tested
end to end in tests/e2e/test_worker_spread.py.
"""

from __future__ import annotations

import copy
import subprocess

import pytest
import tools

tools.require_extra("microwsgi.gunicorn")  # the package needs gunicorn, as a whole
from microwsgi.gunicorn import shares as shares_module  # noqa: E402 - after require_extra
from microwsgi.gunicorn.shares import STALE, Shares  # noqa: E402 - after require_extra


def worker(table: Shares) -> Shares:
    """A worker's view of `table`, with the next free slot joined."""
    slot = table.give()
    assert slot is not None
    view = copy.copy(table)
    view.join(slot)
    return view


def test_a_worker_holding_more_leaves_the_connection_to_one_holding_fewer() -> None:
    table = Shares()
    a, b = worker(table), worker(table)
    assert a.defer(0) is False  # nobody holds fewer than none: a takes it, and counts it
    assert a.defer(1) is True  # b holds none: the next one is b's
    assert b.defer(0) is False
    assert a.defer(1) is False  # one each: a tie is no reason to wait
    assert b.defer(1) is False  # a holds two now: b is behind, it takes this one
    assert a.defer(2) is False  # two each
    assert a.defer(3) is True  # a holds three, b two


def test_counts_published_between_accepts_are_what_others_compare_with() -> None:
    table = Shares()
    a, b = worker(table), worker(table)
    a.publish(10)
    assert b.defer(3) is False
    b.publish(3)
    assert a.defer(10) is True
    a.publish(0)  # its connections closed: the heartbeat says so
    assert b.defer(3) is True


def test_a_worker_that_left_is_not_deferred_to_and_its_slot_is_given_again() -> None:
    table = Shares()
    a, b = worker(table), worker(table)
    b.leave()  # stopping: it accepts no more
    assert a.defer(5) is False
    assert table.give() == 1  # b's slot
    b.publish(0)  # a view that left writes nothing any more
    assert a.defer(5) is False


def test_a_dead_workers_slot_is_not_deferred_to_and_is_given_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = Shares()
    a = worker(table)
    slot = table.give()
    assert slot == 1
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = copy.copy(table)
    with monkeypatch.context() as patch:  # a worker that joined, then died without leaving
        patch.setattr(shares_module.os, "getpid", lambda: gone.pid)
        dead.join(slot)
    dead.publish(0)
    assert a.defer(5) is False
    assert table.give() == slot


def test_a_worker_not_heard_from_for_a_while_is_not_deferred_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = Shares()
    a, b = worker(table), worker(table)
    b.publish(0)
    now = shares_module.time.monotonic()
    monkeypatch.setattr(shares_module.time, "monotonic", lambda: now + STALE + 1)
    assert a.defer(5) is False  # b may be stuck or killed: a takes the connection


def test_a_slot_given_to_a_worker_that_never_started_is_given_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = Shares(slots=1)
    assert table.give() == 0
    assert table.give() is None  # reserved: the worker may still be booting
    now = shares_module.time.monotonic()
    monkeypatch.setattr(shares_module.time, "monotonic", lambda: now + STALE + 1)
    assert table.give() == 0


def test_with_no_slot_a_worker_accepts_as_before() -> None:
    table = Shares(slots=1)
    a = worker(table)
    a.publish(0)
    lone = copy.copy(table)
    lone.leave()  # a view of its own, no slot: it neither defers nor writes
    assert lone.defer(100) is False
    assert a.defer(0) is False
