"""Sans-IO HTTP/1.1, server side: bytes in, events out, bytes to write back (RFC 9112).

`Connection` is the state machine of one connection. It parses request heads (``head.py``, one
path for whole and trickling heads, under the `Limits`), checks their request-targets
(``target.py``) and fields (``fields.py``) against the grammar (``grammar.py``), reads bodies
(``body.py``), frames responses and decides keep-alive. Every refusal is a `ProtocolError`
carrying the status to answer with. Nothing here touches a socket, a clock or a thread.

This package's names are its one entry point, as h11's are (docs/devserver.md): `Connection`,
the events its ``next_event()`` returns (`RequestHead`, `Data`, `EndOfMessage`,
`ConnectionClosed`, the `NEED_DATA` and `PAUSED` sentinels), `Limits`, `ProtocolError`, and the
field names the parser refuses to see twice or as trailers. Tests and tools drive the parser
through them; the modules inside are not API.
"""

from .connection import Connection
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Limits,
    ProtocolError,
    RequestHead,
    Sentinel,
)
from .fields import FORBIDDEN_TRAILERS, SINGLETON_FIELDS

__all__ = [
    "FORBIDDEN_TRAILERS",
    "NEED_DATA",
    "PAUSED",
    "SINGLETON_FIELDS",
    "Connection",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Limits",
    "ProtocolError",
    "RequestHead",
    "Sentinel",
]
