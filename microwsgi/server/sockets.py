"""Socket plumbing: binding, client socket settings, bounded reads and writes, the waker.

This module owns every system call on a socket that is not "accept" or "wait for many":
binding a listening socket (with one-line errors), how a client socket is set up (blocking
with kernel timeouts, no Nagle), reads and writes that never wait past a bound, `os.sendfile`,
closing after an error answer without destroying it, and the socketpair that wakes a thread
blocked in select or epoll. Which socket to read when is the thread strategies'; HTTP is the
protocol's.

Client sockets are blocking with kernel timeouts (SO_RCVTIMEO/SO_SNDTIMEO). PERF: the hot path
("wait briefly for the next request, read it, write the answer") is then two system calls;
Python's own socket timeouts would poll() before each one. That, `select.poll` and
MSG_DONTWAIT make the server POSIX-only (Linux, macOS, BSD).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from typing import Final

from .._address import check_port

RECV_SIZE: Final = 65536
# After an error answer that closes the connection, unread request bytes would make the kernel
# send RST, which can destroy the answer before the client reads it; so the server half-closes
# and discards input for at most this long (and this many bytes) first: a "lingering close".
_LINGER_SECONDS: Final = 0.5
_LINGER_BYTES: Final = 1 << 18


class BindError(OSError):
    """The listening socket could not be created; `str()` is one line for the user."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def format_address(host: str, port: int) -> str:
    """`host:port`, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening socket on `host:port` (port 0: any free port); raises `BindError`.

    `host` may be a name ('localhost' prefers its IPv4 address, which most clients try first),
    '' for every IPv4 interface, or '::' for every interface, IPv4 included where the system
    allows it.
    """
    where = format_address(host or "0.0.0.0", port)
    try:
        check_port(port)  # getaddrinfo would wrap 99999 around to 34463
    except ValueError as exc:
        raise BindError(None, f"cannot listen on {where}: {exc}") from None
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    error: OSError | None = None
    for family, _, _, _, address in infos:
        dualstack = family == socket.AF_INET6 and host == "::" and socket.has_dualstack_ipv6()
        try:
            return socket.create_server(
                address, family=family, backlog=backlog, dualstack_ipv6=dualstack
            )
        except OSError as exc:
            error = error or exc
    assert error is not None
    reason = os.strerror(error.errno) if error.errno else str(error)
    raise BindError(error.errno, f"cannot listen on {where}: {reason[:1].lower() + reason[1:]}")


def _timeval(seconds: float) -> bytes:
    """A `struct timeval` for SO_RCVTIMEO/SO_SNDTIMEO; at least 1 ms (zero means forever)."""
    whole, fraction = divmod(max(seconds, 0.001), 1.0)
    return struct.pack("ll", int(whole), int(fraction * 1e6))


def prepare_client(sock: socket.socket, io_timeout: float, receive_timeout: float) -> None:
    """Set up an accepted client socket: blocking, with kernel send and receive timeouts."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Answers are written in one send; waiting for an ACK (Nagle) only adds latency.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(True)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(io_timeout))
    set_receive_timeout(sock, receive_timeout)


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """How long a blocking recv on `sock` waits before giving up (BlockingIOError)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))


def _wait(sock: socket.socket, writable: bool, timeout: float) -> bool:
    """Wait until `sock` is readable (or writable); False on timeout."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT if writable else select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


# Each thread's read buffer (see `receive`).
_buffers = threading.local()


def read_buffer() -> memoryview:
    """This thread's read buffer (see `receive`), made on its first read."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(RECV_SIZE))
    return view


def bytes_waiting(sock: socket.socket) -> bool:
    """Whether the peer sent what has not been read yet (bytes, or the end of its sending)."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing there (BlockingIOError), or a broken connection: nothing to read
        return False
    return True


def receive(sock: socket.socket, flags: int = 0) -> memoryview:
    """What `sock` has, up to RECV_SIZE bytes (none at EOF), as a view of this thread's read
    buffer (`read_buffer`): valid until the thread reads again, so copy it (the protocol's
    buffer does).

    Not `sock.recv(RECV_SIZE)`: that allocates the whole 64 KiB and shrinks it in place to
    what came, and the freed tails, left between small long-lived objects, fragment the heap:
    a long-running server's RSS creeps up (half of the creep the soak measured). PERF: reading
    into a buffer the thread keeps costs about 300 instructions more a request.
    """
    view = read_buffer()
    return view[: sock.recv_into(view, RECV_SIZE, flags)]


def send_failure(exc: OSError) -> OSError:
    """What a failed send on a client socket means: a blocking send that gives up with EAGAIN
    has waited out SO_SNDTIMEO (the client stopped reading), a TimeoutError; else `exc`."""
    if isinstance(exc, BlockingIOError):
        return _timed_out("writing to")
    return exc


def _timed_out(doing: str) -> TimeoutError:
    return TimeoutError(f"timed out {doing} the client")


def recv_some(sock: socket.socket, timeout: float) -> bytes:
    """Bytes from `sock` (b'' at EOF), waiting up to about `timeout`; raises TimeoutError."""
    try:
        return bytes(receive(sock))  # waits up to the kernel receive timeout
    except BlockingIOError:  # that passed: wait the rest in poll()
        pass
    if _wait(sock, False, timeout):
        with contextlib.suppress(BlockingIOError):
            return bytes(receive(sock, socket.MSG_DONTWAIT))
    raise _timed_out("reading from")


def send_all(sock: socket.socket, data: bytes) -> None:
    """Write all of `data`; each blocking step is bounded by the socket's SO_SNDTIMEO."""
    try:
        sock.sendall(data)
    except BlockingIOError as exc:
        raise send_failure(exc) from None


def sendfile_span(sock: socket.socket, fd: int, offset: int, size: int, timeout: float) -> int:
    """Send `size` bytes of file `fd` from `offset` with `os.sendfile`; the count sent.

    Fewer bytes than `size` means the file was shorter. Raises OSError (TimeoutError when the
    client stops reading for `timeout` seconds).
    """
    sent = 0
    while sent < size:
        try:
            count = os.sendfile(sock.fileno(), fd, offset + sent, size - sent)
        except BlockingIOError:
            if not _wait(sock, True, timeout):
                raise _timed_out("writing to") from None
            continue
        if count == 0:
            break
        sent += count
    return sent


def lingering_close(sock: socket.socket) -> None:
    """Half-close, then discard what the client is still sending (bounded) before closing.

    Closing with unread input makes the kernel send RST, which can destroy the answer before
    the client has read it.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        end, seen = time.monotonic() + _LINGER_SECONDS, 0
        while seen < _LINGER_BYTES:
            chunk = recv_some(sock, end - time.monotonic())
            if not chunk:
                break
            seen += len(chunk)
    except OSError:  # includes TimeoutError: the client keeps sending; give up
        pass


class Waker:
    """Wakes a thread blocked in select or epoll: register `fileno()`, call `wake()`."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def fileno(self) -> int:
        return self._reader.fileno()

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # a full buffer already means "wake up"
            self._writer.send(b"\0")

    def clear(self) -> None:
        """Consume the pending wake-ups (call when woken)."""
        with contextlib.suppress(OSError):
            while self._reader.recv(4096):
                pass

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
