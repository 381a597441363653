"""A strict HTTP/1.1 client connection on asyncio streams, for the soak and the live fuzz.

It owns opening, closing (politely, or with a reset) and reading responses exactly as RFC
9112 frames them (Content-Length, chunked, or until the close), refusing anything malformed
with `Malformed`: a client that reads leniently would hide the server bugs the soak is for.
What to send and how to judge the answers belongs to its callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from dataclasses import dataclass, field

__all__ = ["Conn", "Malformed", "Response", "ServerClosed"]

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) [\t -~\x80-\xff]*\r\n")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\t -~\x80-\xff]*?)[ \t]*\r\n")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*)?\r\n")
_LENGTH = re.compile(r"[0-9]{1,18}")


class Malformed(Exception):
    """The server sent bytes that are not a well-formed HTTP/1.1 response."""


class ServerClosed(Exception):
    """The server closed the connection (EOF or reset) where a response was expected."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    framing: str = "length"  # "length", "chunked", "close" or "none"

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def closes(self) -> bool:
        """The response says the server closes after it (`Connection: close` or EOF framing)."""
        connection = (self.header("connection") or "").lower()
        return "close" in connection or self.framing == "close"


class Conn:
    """One client connection to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closing = False  # a response said the server closes after it

    @classmethod
    async def open(
        cls, address: tuple[str, int], *, receive_buffer: int | None = None, limit: int = 1 << 16
    ) -> Conn:
        """Connect; `receive_buffer` shrinks SO_RCVBUF (a client that stops reading)."""
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, address)
            reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a crashing client would."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def closed_by_server(self) -> bool:
        """Wait for the server's EOF (or reset); False if it sends bytes instead."""
        try:
            return await self.reader.read(1) == b""
        except ConnectionError:
            return True

    # -- reading responses -------------------------------------------------------------------

    async def _line(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise ServerClosed("connection closed before a response") from None
            raise Malformed(f"response cut short: {exc.partial[:80]!r}") from None
        except asyncio.LimitOverrunError:
            raise Malformed("response line over 64 KiB") from None
        except ConnectionError as exc:
            raise ServerClosed(f"connection reset: {exc}") from None
        if not line.endswith(b"\r\n"):
            raise Malformed(f"line not ended by CRLF: {line[:80]!r}")
        return line

    async def _exactly(self, size: int) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise Malformed(f"body cut short after {len(exc.partial)} of {size} bytes") from None
        except ConnectionError as exc:
            raise ServerClosed(f"connection reset mid-body: {exc}") from None

    async def head(self) -> Response:
        """The status line and header section of the next response (1xx included)."""
        line = await self._line()
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            raise Malformed(f"bad status line {line[:80]!r}")
        response = Response(int(match.group(1)))
        while (line := await self._line()) != b"\r\n":
            field_match = _FIELD.fullmatch(line)
            if field_match is None:
                raise Malformed(f"bad header line {line[:80]!r}")
            name, value = field_match.groups()
            response.headers.append((name.decode().lower(), value.decode("latin-1")))
            if len(response.headers) > 200:
                raise Malformed("more than 200 header fields")
        return response

    async def chunk(self) -> bytes:
        """The data of the next chunk of a chunked body; b'' for the last chunk (trailers read)."""
        line = await self._line()
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise Malformed(f"bad chunk size line {line[:80]!r}")
        size = int(match.group(1), 16)
        if size == 0:
            while await self._line() != b"\r\n":
                pass
            return b""
        data = await self._exactly(size)
        if await self._exactly(2) != b"\r\n":
            raise Malformed("chunk data not followed by CRLF")
        return data

    async def body(self, response: Response, *, head: bool = False) -> None:
        """Read the body `response` frames (RFC 9112 §6.3) into `response.body`."""
        codings = response.header("transfer-encoding")
        length = response.header("content-length")
        if head or response.status in (204, 304) or response.status < 200:
            response.framing = "none"
        elif codings is not None:
            if codings.lower() != "chunked":
                raise Malformed(f"unexpected Transfer-Encoding {codings!r}")
            if length is not None:
                raise Malformed("both Transfer-Encoding and Content-Length")
            response.framing = "chunked"
            parts = []
            while data := await self.chunk():
                parts.append(data)
            response.body = b"".join(parts)
        elif length is not None:
            if not _LENGTH.fullmatch(length):
                raise Malformed(f"bad Content-Length {length!r}")
            response.body = await self._exactly(int(length))
        else:
            response.framing = "close"
            try:
                response.body = await self.reader.read()
            except ConnectionError as exc:
                raise ServerClosed(f"connection reset mid-body: {exc}") from None

    async def response(self, *, head: bool = False) -> Response:
        """The next final response, whole; interim (1xx) responses are skipped."""
        while True:
            response = await self.head()
            if response.status >= 200:
                await self.body(response, head=head)
                self.closing = self.closing or response.closes
                return response
            if response.status == 101:
                raise Malformed("101 Switching Protocols was never asked for")
