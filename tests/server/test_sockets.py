"""Tests for microwsgi.server.sockets: reads that reuse one buffer per thread, bounded waits."""

from __future__ import annotations

import socket
import threading

import pytest

from microwsgi.server.sockets import receive, recv_some


def test_receive_gives_what_came_in_the_threads_own_buffer() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"first")
        first = receive(ours)
        assert bytes(first) == b"first"
        theirs.sendall(b"2nd")
        second = receive(ours)
        assert bytes(second) == b"2nd"
        # One buffer, reused: a view is only good until the thread's next read.
        assert second.obj is first.obj and bytes(first) == b"2ndst"
        seen: list[object] = []
        other = threading.Thread(target=lambda: seen.append(receive(ours).obj))
        theirs.sendall(b"x")
        other.start()
        other.join()
        assert seen[0] is not first.obj  # another thread reads into a buffer of its own
        theirs.close()
        assert len(receive(ours)) == 0  # EOF


def test_recv_some_copies_and_waits_a_bounded_time() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"body")
        data = recv_some(ours, 1.0)
        assert data == b"body" and type(data) is bytes
        ours.setblocking(False)  # no kernel timeout here: poll() bounds the wait
        with pytest.raises(TimeoutError):
            recv_some(ours, 0.01)
