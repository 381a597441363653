"""`Channel`: a client connection as the engine sees it.

This module owns the record that travels between the loop thread and the serving threads: the
client socket, its protocol state (`http`, a sans-IO `Connection`), where it came from, and
the timing the engine needs (when an unfinished request head began, when the loop gives up on an
idle connection, how long a thread may wait on it). A channel is owned by exactly one thread
at a time: the loop's while it is idle, one serving thread's while it is served.
"""

from __future__ import annotations

import socket
from typing import Any

from .protocol.connection import Connection


class Channel:
    """A client socket, its HTTP state and its timers."""

    __slots__ = (
        "base_environ",
        "deadline",
        "fd",
        "http",
        "in_epoll",
        "park_until",
        "peer",
        "receive_timeout",
        "registered",
        "sock",
        "started",
    )

    def __init__(
        self,
        sock: socket.socket,
        http: Connection,
        peer: tuple[str, str],
        base_environ: dict[str, Any],
        receive_timeout: float,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.http = http
        self.peer = peer  # (address, port) as text
        self.base_environ = base_environ  # of the listening socket it arrived on
        # When the first byte of a still-incomplete request head arrived (header timeout).
        self.started: float | None = None
        self.receive_timeout = receive_timeout  # the socket's SO_RCVTIMEO, as last set
        # The loop's: watched by its selector, and when it gives up on the connection.
        self.registered = False
        self.deadline = 0.0
        # The epoll threads' (mux.py): armed in their epoll set, and until when.
        self.in_epoll = False
        self.park_until = 0.0
