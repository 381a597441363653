"""Which of a gunicorn master's workers takes the next connection: `Shares`.

gunicorn's workers share the master's listening sockets, and whichever is first in accept()
takes the connection waiting there. A burst of connections (wrk opening its 8 at once, a
proxy's pool filling up) then tends to go to the one worker that woke first: the others
stay idle for as long as those keep-alive connections last (`-w 2` served 0.98x `-w 1`).

This module owns the table the workers of one master compare their loads in: memory shared
by the master and every worker it forks (an anonymous shared mapping made in the master,
inherited across fork), one slot a worker holding its pid, how many connections it holds and
when it last said so. The master gives each worker its slot before forking it (one thread
there: no two workers get the same slot); the worker writes its own slot only, at each accept
and each heartbeat. Before accepting, a worker that holds more connections than another live
worker leaves the connection to that one (`Shares.defer`); the engine then looks away from
the listening sockets for a short while and takes the connection itself if it is still
waiting then (``microwsgi/server/loop.py``), so that a worker that does not accept (stuck,
killed, stopping) costs a connection that short wait at most, never the connection.

Why not the other ways to spread connections: a listening socket of each worker's own with
SO_REUSEPORT (gunicorn's `reuse_port`) loses the connections queued on a worker's socket when
that worker exits (a graceful restart, max_requests), and spreads neither unix sockets nor
the sockets systemd hands over; EPOLLEXCLUSIVE wakes one idle worker per connection, but the
one woken first still takes every connection already queued. Comparing loads works on every
listening socket gunicorn can have, and needs no socket of its own.
"""

from __future__ import annotations

import mmap
import os
import time
from typing import Final

__all__: list[str] = []  # for worker.py

# Slots in a table; a worker that finds none free (more workers than this) accepts as before.
SLOTS: Final = 256
# A slot whose worker has not written it for this long is not compared with (a worker
# stopped in a way that left no word: SIGKILL, a crash); heartbeats come every second at most.
STALE: Final = 5.0
# A slot: pid (0: free; -1: given to a worker that has not started yet), connections held,
# when it was last written (time.monotonic(), the same clock in every process).
_PID, _HELD, _STAMP, _FIELDS = 0, 1, 2, 3
# Cell 0 holds how many slots have ever been given out: the slots worth reading.
_USED = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone; or someone else's: the pid reused
        return False
    return True


class Shares:
    """The load table of one gunicorn master's workers (see the module docstring).

    Made in the master; `give()` there, before each fork, picks the new worker's slot; in the
    worker, `join(slot)` takes it, `defer(held)` decides each accept, `publish(held)` keeps the
    count fresh between accepts and `leave()` gives the slot back when the worker stops
    accepting.
    """

    def __init__(self, slots: int = SLOTS) -> None:
        self._map = mmap.mmap(-1, 8 * (1 + slots * _FIELDS))  # MAP_SHARED | MAP_ANONYMOUS
        self._cells = memoryview(self._map).cast("d")
        self._slots = slots
        self._mine = -1  # the first cell of this process's slot; -1: none

    def give(self) -> int | None:
        """In the master: a free slot for the worker about to be forked, or None if none is."""
        cells, now = self._cells, time.monotonic()
        for slot in range(self._slots):
            base = 1 + slot * _FIELDS
            pid = int(cells[base + _PID])
            reserved_long_ago = pid == -1 and now - cells[base + _STAMP] > STALE
            if pid == 0 or reserved_long_ago or (pid > 0 and not _alive(pid)):
                cells[base + _PID], cells[base + _HELD], cells[base + _STAMP] = -1, 0, now
                cells[_USED] = max(cells[_USED], slot + 1)
                return slot
        return None

    def join(self, slot: int) -> None:
        """In the worker: take `slot` (from `give`) as this process's own."""
        self._mine = base = 1 + slot * _FIELDS
        cells = self._cells
        cells[base + _HELD], cells[base + _STAMP] = 0, time.monotonic()
        cells[base + _PID] = os.getpid()

    def publish(self, held: int) -> None:
        """Say that this worker holds `held` connections now."""
        base = self._mine
        if base >= 0:
            cells = self._cells
            cells[base + _HELD], cells[base + _STAMP] = held, time.monotonic()

    def defer(self, held: int) -> bool:
        """Before accepting, holding `held` connections: True if another live worker holds
        fewer, and should take the connection waiting; else False, and this worker counts the
        one it is about to take."""
        base = self._mine
        if base < 0:
            return False
        cells, now = self._cells, time.monotonic()
        for other in range(1, 1 + int(cells[_USED]) * _FIELDS, _FIELDS):
            pid = cells[other + _PID]
            if (
                other != base
                and pid > 0
                and cells[other + _HELD] < held
                and now - cells[other + _STAMP] < STALE
                and _alive(int(pid))
            ):
                cells[base + _HELD], cells[base + _STAMP] = held, now
                return True
        cells[base + _HELD], cells[base + _STAMP] = held + 1, now
        return False

    def leave(self) -> None:
        """Give this worker's slot back: it accepts no more (stopping), others stop deferring
        to it."""
        base = self._mine
        if base >= 0:
            self._mine = -1
            self._cells[base + _PID] = 0
