"""Reading a request body from bytes: one reader per framing (RFC 9112 §6), chosen by the head.

This module owns turning the bytes after a head into `Data` events and one `EndOfMessage`:
`LengthReader` for a Content-Length body, `ChunkedReader` for chunked coding with its
extensions and trailer section, and the body-size cap for chunked bodies (a declared length
is checked with the head, in ``fields.py``). A reader never reads past its message, so what is
left in the buffer after `EndOfMessage` is the next, pipelined request.
"""

from __future__ import annotations

from typing import Final

from .events import NEED_DATA, Data, EndOfMessage, Limits, ProtocolError, Sentinel
from .grammar import chunk_size
from .head import HeadReader

# Largest Data event: bounds what one event holds, whatever the client sends at once.
_PIECE: Final = 65536


def _take(buf: bytearray, wanted: int) -> bytes:
    """Up to `wanted` bytes from the front of `buf` (at most one piece)."""
    size = min(wanted, _PIECE)
    if size >= len(buf):
        data = bytes(buf)  # PERF: the whole buffer is the usual case: one copy, no slicing
        buf.clear()
        return data
    data = bytes(buf[:size])
    del buf[:size]
    return data


class LengthReader:
    """A body of exactly Content-Length bytes."""

    __slots__ = ("_remaining",)

    def __init__(self, length: int) -> None:
        self._remaining = length

    def read(self, buf: bytearray) -> Data | EndOfMessage | Sentinel:
        if not self._remaining:
            return EndOfMessage()
        if not buf:
            return NEED_DATA
        data = _take(buf, self._remaining)
        self._remaining -= len(data)
        return Data(data)


# What a chunked reader expects next.
_EXPECT_SIZE: Final = Sentinel("chunk-size line")
_EXPECT_DATA: Final = Sentinel("chunk data")
_EXPECT_CRLF: Final = Sentinel("CRLF after chunk data")
_EXPECT_TRAILERS: Final = Sentinel("trailer section")


class ChunkedReader:
    """A chunked body (RFC 9112 §7.1): chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF,
    ended by a zero-size chunk, an optional trailer section and a blank line."""

    __slots__ = ("_limits", "_remaining", "_scan", "_state", "_total", "_trailers")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._state = _EXPECT_SIZE
        self._remaining = 0  # bytes left in the current chunk
        self._total = 0  # body bytes announced so far
        self._scan = 0  # where the search for the end of a chunk-size line resumes
        self._trailers: HeadReader | None = None

    def read(self, buf: bytearray) -> Data | EndOfMessage | Sentinel:
        while True:
            state = self._state
            if state is _EXPECT_DATA:
                if not buf:
                    return NEED_DATA
                data = _take(buf, self._remaining)
                self._remaining -= len(data)
                if not self._remaining:
                    self._state = _EXPECT_CRLF
                return Data(data)
            if state is _EXPECT_CRLF:
                if buf[:2] != b"\r\n"[: len(buf)]:
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                if len(buf) < 2:
                    return NEED_DATA
                del buf[:2]
                self._state = _EXPECT_SIZE
            elif state is _EXPECT_SIZE:
                if not self._read_size(buf):
                    return NEED_DATA
            else:
                assert self._trailers is not None
                if not self._trailers.read(buf):
                    return NEED_DATA
                return EndOfMessage(self._trailers.fields)

    def _read_size(self, buf: bytearray) -> bool:
        end = buf.find(b"\n", self._scan)
        if end == -1:
            self._scan = len(buf)
            if len(buf) - buf.endswith(b"\r") > self._limits.max_chunk_line:
                raise ProtocolError(400, "chunk header too long")
            return False
        has_cr = end > 0 and buf[end - 1] == 0x0D
        size = chunk_size(bytes(buf[: end - has_cr]), has_cr, self._limits)
        del buf[: end + 1]
        self._scan = 0
        self._total += size
        limit = self._limits.max_body_size
        if limit is not None and self._total > limit:
            raise ProtocolError(413, "request body too large")
        if size:
            self._state = _EXPECT_DATA
            self._remaining = size
        else:
            # Trailer fields share the header section's limits (counted afresh).
            self._state = _EXPECT_TRAILERS
            self._trailers = HeadReader(self._limits, trailers=True)
        return True
