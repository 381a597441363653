"""The request grammar of RFC 9112/9110, as patterns and the checks that apply them to a line.

This module owns what a well-formed request line, field line, Host value and chunk-size line
look like (and a whole well-formed head, the usual case, as one pattern), and says in one
sentence why a line is not one. It keeps no state: which line comes next, and the limits over
a whole section, belong to ``head.py``; what a field *means* (Host, Content-Length,
Transfer-Encoding...) to ``fields.py``; the forms of a request-target to ``target.py``.

Every line of a head, chunk header and trailer section must end in CRLF. RFC 9112 §2.2 only
*allows* a recipient to accept a bare LF; accepting it would let us see a header line that an
intermediary in front of us does not, which is how requests get smuggled.
"""

from __future__ import annotations

import re
from typing import Final

from ..._http import TCHAR, TOKEN_RE
from .events import Limits, ProtocolError

# RFC 9110 §9.1: method = token, case-sensitive. Like gunicorn we take only the conventional
# shape every registered method has: 3 to 20 characters, no lower-case letter, no '#'.
_METHOD_CHAR: Final = r"[!$%&'*+\-.^_`|~0-9A-Z]"
_METHOD_PREFIX_RE: Final = re.compile((_METHOD_CHAR + "*").encode("ascii"))
_MIN_METHOD: Final = 3
_MAX_METHOD: Final = 20
_MAX_VERSION: Final = len(b" HTTP/1.1")
_TCHAR: Final = TCHAR.encode("ascii")  # for the chunk extensions, read as bytes

# A head is read as latin-1 text, one character per byte, so the patterns below are written
# over the characters U+0000-U+00FF and say exactly what they would say over the bytes.
# RFC 9112 §3: method SP request-target SP HTTP-version. The target is printable ASCII: RFC
# 3986 §2 has every other byte percent-encoded, and gunicorn refuses raw bytes >= 0x80 too.
_REQUEST_LINE: Final = (
    rf"({_METHOD_CHAR}{{{_MIN_METHOD},{_MAX_METHOD}}}) ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])"
)
REQUEST_LINE_RE: Final = re.compile(_REQUEST_LINE)
# RFC 9112 §5 / RFC 9110 §5.5: field-name ":" OWS field-value OWS. The value holds VCHAR,
# obs-text, and SP/HTAB between them; any other control byte (NUL, CR, DEL...) is refused
# rather than cleaned up.
_VCHAR: Final = r"[\x21-\x7e\x80-\xff]"  # VCHAR or obs-text
_FIELD_VALUE: Final = rf"(?:{_VCHAR}(?:[\t\x20-\x7e\x80-\xff]*{_VCHAR})?)?"
_FIELD: Final = rf"({TCHAR}+):[ \t]*({_FIELD_VALUE})[ \t]*"
FIELD_RE: Final = re.compile(_FIELD)
# PERF: a whole head at once: the request line and every field line, each ending in CRLF,
# checked by one match and the fields taken by one findall, all at C speed.
HEAD_RE: Final = re.compile(rf"{_REQUEST_LINE}\r\n((?:{TCHAR}+:[ \t]*{_FIELD_VALUE}[ \t]*\r\n)*)")
FIELD_LINE_RE: Final = re.compile(_FIELD + r"\r\n")
# RFC 9110 §7.2 / RFC 3986 §3.2.2: uri-host [ ":" port ], host an IP-literal or a reg-name.
HOST_RE: Final = re.compile(
    r"(?:\[[0-9A-Za-z:.!$&'()*+,;=\-_~]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
# RFC 9112 §7.1: chunk-size = 1*HEXDIG; past 16 significant digits (64 bits) no body is meant.
# Leading zeros are not counted, so a size that fits is read however it is padded.
CHUNK_SIZE_RE: Final = re.compile(rb"0*[0-9A-Fa-f]{1,16}")
# RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
# a name being a token and a value a token or a quoted-string (RFC 9110 §5.6.2, §5.6.4).
_QUOTED_STRING: Final = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT_RE: Final = re.compile(
    rb"(?:[ \t]*;[ \t]*%s+(?:[ \t]*=[ \t]*(?:%s+|%s))?)*" % (_TCHAR, _TCHAR, _QUOTED_STRING)
)


def check_request_line_prefix(buf: bytes | bytearray, end: int, limits: Limits) -> None:
    """Check what is known of a request line: ``buf[:end]``, complete or not.

    Run on partial lines too, so a TLS handshake or a target that never ends is refused at once
    rather than buffered. Each problem shows at a position of the line; of those already
    shown, the first is reported, so a request gets the same status however its bytes are
    split. Each call costs O(1) until the line is longer than the target cap.
    """
    shown: list[tuple[int, int, str]] = []  # (position, status, message)
    sp1 = buf.find(b" ", 0, min(end, _MAX_METHOD + 1))
    method_end = sp1 if sp1 != -1 else min(end, _MAX_METHOD + 1)
    valid = _METHOD_PREFIX_RE.match(buf, 0, method_end)
    assert valid is not None  # the pattern matches the empty string
    if valid.end() < method_end:
        shown.append((valid.end(), 400, "malformed request method"))
    elif 0 <= sp1 < _MIN_METHOD:
        shown.append((sp1, 400, "malformed request method"))
    elif sp1 == -1 and end > _MAX_METHOD:
        shown.append((_MAX_METHOD, 400, "malformed request method"))
    if limits.max_request_line is not None and end > limits.max_request_line:
        shown.append((limits.max_request_line, 414, "request line too long"))
    # Looking for the second space scans the target: only when a problem is at hand already,
    # or the target may be too long (then the scan happens once: the error is final).
    if sp1 != -1 and (shown or end - sp1 - 1 > limits.max_target):
        sp2 = buf.find(b" ", sp1 + 1, end)
        if (sp2 if sp2 != -1 else end) - sp1 - 1 > limits.max_target:
            shown.append((sp1 + 1 + limits.max_target, 414, "request target too long"))
        if sp2 != -1 and end - sp2 > _MAX_VERSION:
            shown.append((sp2 + _MAX_VERSION, 400, "malformed request line"))
    if shown:
        _, status, message = min(shown)
        raise ProtocolError(status, message)


def parse_request_line(line: str, has_cr: bool, limits: Limits) -> tuple[str, str, str]:
    """(method, target, "1.1" or "1.0") of a complete request line, or ProtocolError."""
    match = REQUEST_LINE_RE.fullmatch(line) if has_cr else None
    if (
        match is None
        or len(line) > limits.max_target
        or (limits.max_request_line is not None and len(line) > limits.max_request_line)
    ):
        # A problem the line showed while it was arriving (a bad method, a length past a cap)
        # comes before its ending and its overall shape, so that a line gets the same answer
        # however it was split.
        check_request_line_prefix(line.encode("latin-1"), len(line), limits)
    if not has_cr:
        raise ProtocolError(400, "bare LF line ending")
    if match is None:
        raise ProtocolError(400, "malformed request line")
    method, target, version = match.groups()
    return method, target, http_version(version)


def http_version(version: str) -> str:
    """ "1.1" or "1.0" for a well-formed HTTP-version, or ProtocolError(505)."""
    if version == "HTTP/1.0":
        return "1.0"
    # RFC 9110 §2.5 and §6.2: a recipient processes a higher minor version of a major version
    # it implements as the highest minor version it implements, so HTTP/1.2 to HTTP/1.9 are
    # read (and answered) as HTTP/1.1. Another major version is answered 505 (§15.6.6).
    if version.startswith("HTTP/1."):
        return "1.1"
    raise ProtocolError(505, f"unsupported version {version}")


def field_problem(line: str) -> str:
    """Say why ``line`` is not a field line (all of these are 400)."""
    if line[:1] in (" ", "\t"):
        # RFC 9112 §5.2: obs-fold is obsolete; a server may reject it with 400.
        return "obsolete line folding"
    name, colon, _ = line.partition(":")
    if not colon:
        return "header line without a colon"
    if not TOKEN_RE.fullmatch(name):
        # RFC 9112 §5.1: this includes whitespace between the field name and the colon.
        return f"invalid header name {name[:64].encode('latin-1')!r}"
    return f"invalid byte in header {name!r}"


def chunk_size(line: bytes, has_cr: bool, limits: Limits) -> int:
    """The size a chunk-size line announces (RFC 9112 §7.1), extensions ignored."""
    if len(line) > limits.max_chunk_line:
        raise ProtocolError(400, "chunk header too long")
    if not has_cr:
        raise ProtocolError(400, "bare LF line ending")
    size, semicolon, _ = line.partition(b";")
    if semicolon:
        size = size.rstrip(b" \t")  # BWS may precede the first ';'
    if not CHUNK_SIZE_RE.fullmatch(size):
        raise ProtocolError(400, "invalid chunk size")
    # Extensions are accepted and ignored, but must follow their grammar (as gunicorn holds
    # them to it): whatever two parsers could read differently is refused.
    if semicolon and not _CHUNK_EXT_RE.fullmatch(line, len(size)):
        raise ProtocolError(400, "invalid chunk extension")
    return int(size, 16)


def list_elements(value: str) -> list[str]:
    """Every element of a comma-separated list, lower-cased, empty ones included as ''."""
    return [element.strip(" \t").lower() for element in value.split(",")]


def tokens(value: str) -> list[str]:
    """The elements of a comma-separated list, lower-cased, empty ones left out: RFC 9110
    §5.6.1 has a recipient ignore them (but see fields.py for Transfer-Encoding)."""
    return [element for element in list_elements(value) if element]
