"""Sans-IO HTTP/1.1, server side: bytes in, events out, bytes to write back (RFC 9112).

`Connection` is the state machine of one connection. It parses request heads (``head.py``, one
path for whole and trickling heads, under the `Limits`), checks their request-targets
(``target.py``) and fields (``fields.py``) against the grammar (``grammar.py``), reads bodies
(``body.py``), frames responses and decides keep-alive. Every refusal is a `ProtocolError`
carrying the status to answer with. Nothing here touches a socket, a clock or a thread.
"""
