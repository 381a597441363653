"""What the fields of a request head mean for the protocol: framing, Host, keep-alive, Expect.

This module owns the step from a complete, well-formed header section to a `RequestHead`: one
Host on HTTP/1.1, at most one of each singleton field, a Content-Length that is one plain
number, a Transfer-Encoding that ends in chunked and has no empty element (never with a
Content-Length, never on HTTP/1.0), the keep-alive decision, and `Expect`. It also names the
fields that may not be sent as trailers. Refusals follow gunicorn's parser, the strictest of
the usual peers, even where RFC 9110 would let a recipient merge (identical Content-Length
values, a repeated singleton field). Splitting the section into fields is ``head.py``.
"""

from __future__ import annotations

from typing import Final

from ..._http import parse_content_length
from .events import Limits, ProtocolError, RequestHead
from .grammar import HOST_RE, list_elements, tokens
from .memo import remember

# RFC 9110 §5.3: a field whose grammar is not a list cannot be sent twice; joining two values
# (as the environ does for repeated fields) would make one that neither sender meant.
SINGLETON_FIELDS: Final = frozenset(
    (
        "host",
        "content-length",
        "content-type",
        "authorization",
        "proxy-authorization",
        "range",
        "if-range",
        "if-modified-since",
        "if-unmodified-since",
        "max-forwards",
    )
)
_CONTROL: Final = frozenset(("transfer-encoding", "connection", "expect"))
# Only these fields need a look before the request reaches the application.
_SPECIAL: Final = SINGLETON_FIELDS | _CONTROL

# The Host values found valid (see build_request_head); short ones only.
_HOSTS: Final[dict[str, bool]] = {}
_MAX_HOSTS: Final = 256
_MEMO_HOST: Final = 256

# RFC 9110 §6.5.1: fields that frame, route, authenticate or modify the request, or describe
# its content, must be known before the content and so may not arrive as trailers.
FORBIDDEN_TRAILERS: Final = frozenset(
    (
        "authorization",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "cookie",
        "expect",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "keep-alive",
        "max-forwards",
        "pragma",
        "proxy-authorization",
        "range",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)


def build_request_head(
    line: tuple[str, str, str],
    parts: tuple[str, str, str | None],
    fields: list[tuple[str, str]],
    limits: Limits,
) -> RequestHead:
    """The `RequestHead` of a request line (method, target, version), its target's parts (path,
    query, authority) and its header fields; ProtocolError for a head that cannot be served."""
    method, target, version = line
    chunked = False
    length = None
    connection: list[str] = []
    expect = False
    singletons: set[str] = set()  # the singleton fields seen
    for key, value in fields:
        if key not in _SPECIAL:
            continue  # PERF: the few fields that matter; usually just Host
        if key in SINGLETON_FIELDS:
            if key in singletons:
                raise ProtocolError(400, f"repeated {key} field")
            singletons.add(key)
        if key == "host":
            # PERF: a Host value checked once is remembered (a match costs ~2,500 instructions).
            if value not in _HOSTS and not _valid_host(value):
                # RFC 9112 §3.2: a Host with an invalid field value is answered 400.
                raise ProtocolError(400, "invalid Host")
        elif key == "content-length":
            length = _content_length(value, limits)
        elif key == "transfer-encoding":
            chunked = _is_chunked(fields, version)
        elif key == "connection":
            connection += tokens(value)
        elif key == "expect":
            expect = _expects_continue(value)
    # RFC 9112 §3.2: exactly one Host on 1.1, at most one on 1.0.
    if version == "1.1" and "host" not in singletons:
        raise ProtocolError(400, "missing Host")
    if chunked and length is not None:
        # RFC 9112 §6.3: both present is a smuggling attempt; we reject rather than pick one.
        raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
    # RFC 9112 §9.3: persistent by default on 1.1; on 1.0 only when the client asks. After a
    # CONNECT the bytes that follow would be a tunnel, never another request.
    keep_alive = "close" not in connection and (version == "1.1" or "keep-alive" in connection)
    path, query, authority = parts
    return RequestHead(
        method,
        target,
        version,
        fields,
        length,
        chunked,
        version == "1.1" and expect,
        keep_alive and method != "CONNECT",
        path,
        query,
        authority,
    )


def _valid_host(value: str) -> bool:
    if HOST_RE.fullmatch(value) is None:
        return False
    if len(value) <= _MEMO_HOST:
        remember(_HOSTS, value, True, _MAX_HOSTS)
    return True


def _content_length(value: str, limits: Limits) -> int:
    # RFC 9110 §8.6 allows a list of identical values; gunicorn refuses it, and so do we.
    length = parse_content_length(value)
    if length is None:
        raise ProtocolError(400, "invalid Content-Length")
    if limits.max_body_size is not None and length > limits.max_body_size:
        raise ProtocolError(413, "request body too large")
    return length


def _is_chunked(fields: list[tuple[str, str]], version: str) -> bool:
    """Whether a request with Transfer-Encoding fields is chunked; any other coding is refused."""
    # RFC 9112 §6.1: a server MUST treat Transfer-Encoding in a 1.0 message as faulty framing;
    # §6.3: chunked must be the final coding of a request, once.
    if version == "1.0":
        raise ProtocolError(400, "Transfer-Encoding on HTTP/1.0")
    codings = [c for k, v in fields if k == "transfer-encoding" for c in list_elements(v)]
    if "" in codings:
        # RFC 9110 §5.6.1 lets a recipient skip empty list elements, but Transfer-Encoding is
        # the field that frames a request, which a front end and we must read alike (RFC 9112
        # §6.1, §11.2): "chunked," read as chunked here may be an unknown coding there. So an
        # empty element, or an empty Transfer-Encoding field among others, is refused, with
        # the 501 that h11 and gunicorn give it (a coding we cannot name is not implemented).
        raise ProtocolError(501, "empty element in Transfer-Encoding")
    if codings.count("chunked") > 1:
        raise ProtocolError(400, "chunked applied twice")
    if "chunked" in codings[:-1]:
        raise ProtocolError(400, "chunked is not the final transfer coding")
    if codings != ["chunked"]:
        raise ProtocolError(501, "unsupported transfer coding")
    return True


def _expects_continue(value: str) -> bool:
    # RFC 9110 §10.1.1: 100-continue is the only expectation; a server may answer any other
    # with 417, and gunicorn does.
    if value.strip(" \t").lower() != "100-continue":
        raise ProtocolError(417, f"unsupported expectation {value[:64]!r}")
    return True
