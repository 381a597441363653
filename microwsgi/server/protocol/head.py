"""Reading a header section from bytes: the one path for request heads and trailer sections.

This module owns the walk over the lines of a head as they arrive: empty lines before the
request line, the request line, then field lines until the blank line, under the section's
limits, in stream order. Each call takes every complete line in the buffer, so a head that
arrived whole is split at once and a head trickling in a byte at a time costs linear time;
either way the first problem in the stream is the one reported, so a request gets the same
answer however its bytes are split. A whole head that is well-formed and within the limits
(the usual request) is taken at once, its lines looked up in memos of the lines seen before;
any other is taken line by line, which says what is wrong with it. What one line must look
like is ``grammar.py``; what the fields mean is ``fields.py``.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from .events import Limits, ProtocolError
from .fields import FORBIDDEN_TRAILERS
from .grammar import (
    FIELD_RE,
    REQUEST_LINE_RE,
    check_request_line_prefix,
    field_problem,
    parse_request_line,
)
from .memo import remember
from .target import split_target

RequestLine: TypeAlias = tuple[str, str, str]  # method, target, "1.1" or "1.0"
TargetParts: TypeAlias = tuple[str, str, str | None]  # path, query, authority: see split_target

# PERF: request lines and field lines checked before -> what they are, so that a line a client
# sends again (keep-alive clients send the same ones request after request) costs one dict
# lookup instead of a pattern match (~2,000 instructions a match, however short the line) and
# a split. Only short lines are kept, so that a full memo holds at most ~1 MiB.
_REQUEST_LINES: Final[dict[str, tuple[RequestLine, TargetParts]]] = {}
_MAX_REQUEST_LINES: Final = 512
_FIELD_LINES: Final[dict[str, tuple[str, str]]] = {}
_MAX_FIELD_LINES: Final = 1024
_MEMO_LINE: Final = 256


def usual_request_line(line: str) -> tuple[RequestLine, TargetParts] | None:
    """The parts of a well-formed request line of HTTP/1.1 or 1.0 whose target is allowed
    (remembered if short); None for any other line, which the line-by-line path reports on."""
    match = REQUEST_LINE_RE.fullmatch(line)
    if match is None or match[3] not in ("HTTP/1.1", "HTTP/1.0"):
        return None
    method, target, version = match.groups()
    try:
        parts = split_target(method, target)
    except ProtocolError:
        return None
    found = (method, target, version[5:]), parts
    if len(line) > _MEMO_LINE:
        return found
    return remember(_REQUEST_LINES, line, found, _MAX_REQUEST_LINES)


def usual_field_line(line: str) -> tuple[str, str] | None:
    """(name lower-cased, value) of a well-formed field line (remembered if short); None for
    any other line, which the line-by-line path reports on."""
    match = FIELD_RE.fullmatch(line)
    if match is None:
        return None
    found = match[1].lower(), match[2]
    if len(line) > _MEMO_LINE:
        return found
    return remember(_FIELD_LINES, line, found, _MAX_FIELD_LINES)


class HeadReader:
    """Collects one header section: a request's (request line first) or a trailer section.

    Lines are taken as latin-1 text (one character per byte), so each is decoded once.
    """

    __slots__ = (
        "_limits",
        "_line_cap",
        "_scan",
        "_skipped_empty_line",
        "_trailers",
        "_used",
        "fields",
        "request_line",
        "target_parts",
    )

    def __init__(self, limits: Limits, *, trailers: bool = False) -> None:
        self._limits = limits
        self._trailers = trailers
        # The request line a whole head may have; a longer one goes the line-by-line way,
        # which checks the target's own length and the line's.
        self._line_cap = min(limits.max_target, limits.max_request_line or limits.max_target)
        self.reset()

    def reset(self) -> None:
        """Forget the section read so far, ready for the next one."""
        self.request_line: tuple[str, str, str] | None = None  # method, target, version
        self.target_parts: tuple[str, str, str | None] = ("", "", None)  # see split_target
        self.fields: list[tuple[str, str]] = []
        self._used = 0  # bytes of field lines taken, line endings included
        self._scan = 0  # where the search for the section's end resumes
        self._skipped_empty_line = False

    @property
    def started(self) -> bool:
        """Some line of the section has been taken already."""
        return self.request_line is not None or bool(self.fields)

    def read(self, buf: bytearray) -> bool:
        """Take the complete lines at the front of `buf`; True once the section has ended.

        What is left in `buf` is the start of an unfinished line (checked as far as it goes)
        or, after True, whatever follows the section.
        """
        if not buf:
            return False  # PERF: asked once per keep-alive cycle before the next request came
        if self.request_line is None and not self._trailers:
            # RFC 9112 §2.2: a server should ignore at least one empty line before the request
            # line; gunicorn ignores exactly one, and so do we (a second is an empty request line).
            if buf.startswith(b"\r\n") and not self._skipped_empty_line:
                del buf[:2]
                self._skipped_empty_line = True
        elif buf.startswith(b"\r\n"):  # the blank line that ends the section
            del buf[:2]
            return True
        end = buf.find(b"\r\n\r\n", self._scan)
        if end != -1:
            block = buf[: end + 2].decode("latin-1")
            del buf[: end + 4]
            if self.request_line is not None or self._trailers or not self._take_whole_head(block):
                self._take(block)
            return True
        stop = buf.rfind(b"\n", self._scan) + 1
        if stop:
            self._take(buf[:stop].decode("latin-1"))
            del buf[:stop]
        self._scan = max(0, len(buf) - 3)
        partial = len(buf) - buf.endswith(b"\r")  # a trailing CR may start a CRLF
        if self.request_line is None and not self._trailers:
            check_request_line_prefix(buf, partial, self._limits)
        else:
            self._check_size(partial, 2 if partial else 0)
        return False

    def _take(self, block: str) -> None:
        """Take the lines of `block`, which ends in a line ending."""
        lines = block.split("\r\n")
        if block.count("\n") != len(lines) - 1:
            # A bare LF somewhere: go line by line so the problem is reported where it is.
            for raw in block.split("\n")[:-1]:
                has_cr = raw.endswith("\r")
                self._take_line(raw[:-1] if has_cr else raw, has_cr)
            return
        lines.pop()  # the empty string after the last CRLF
        size = len(block)  # of the field lines, CRLFs included, once the request line is out
        if self.request_line is None and not self._trailers:
            first = lines.pop(0)
            self._take_request_line(first, True)
            size -= len(first) + 2
        if lines:
            self._take_fields(lines, size)

    def _take_whole_head(self, block: str) -> bool:
        """Take a whole request head that is well-formed and within every limit; False (and
        nothing taken) for any other, which the line-by-line path then reports on.

        PERF: a split, then one memo lookup a line for the lines seen before; about 3,000
        instructions for a head of two lines, against 12,000 for one match of the whole head,
        a findall and the target's split. A line with a bare CR or LF is never in a memo and
        never matches a pattern, so it goes the line-by-line way.
        """
        lines = block.split("\r\n")
        lines.pop()  # the empty string after the last CRLF
        first = lines[0]
        del lines[0]
        limits = self._limits
        section = len(block) - len(first) - 2
        if (
            len(first) > self._line_cap
            or section > limits.max_header_bytes
            or len(lines) > limits.max_header_count
            or (
                limits.max_field_size is not None
                and lines
                and max(map(len, lines)) + 2 > limits.max_field_size
            )
        ):
            return False
        request = _REQUEST_LINES.get(first) or usual_request_line(first)
        if request is None:
            return False
        known = _FIELD_LINES
        fields = []
        for line in lines:  # PERF: a loop, not a comprehension: most heads have a line or two
            field = known.get(line) or usual_field_line(line)
            if field is None:
                return False
            fields.append(field)
        self.request_line, self.target_parts = request
        self.fields = fields
        self._used = section
        return True

    def _take_line(self, line: str, has_cr: bool) -> None:
        if self.request_line is None and not self._trailers:
            self._take_request_line(line, has_cr)
        else:
            self._take_field(line, has_cr)

    def _take_request_line(self, line: str, has_cr: bool) -> None:
        line_parts = self.request_line = parse_request_line(line, has_cr, self._limits)
        self.target_parts = split_target(line_parts[0], line_parts[1])

    def _take_fields(self, lines: list[str], size: int) -> None:
        """Take complete field lines that ended in CRLF, `size` bytes in all with the CRLFs."""
        limits = self._limits
        used = self._used + size
        # PERF: the whole batch is checked at C speed; a batch with any problem is taken again
        # line by line, so that the first problem in the stream is the one reported.
        matches = list(filter(None, map(FIELD_RE.fullmatch, lines)))
        if (
            used <= limits.max_header_bytes
            and len(self.fields) + len(lines) <= limits.max_header_count
            and len(matches) == len(lines)
            and (limits.max_field_size is None or max(map(len, lines)) + 2 <= limits.max_field_size)
        ):
            fields = [(m[1].lower(), m[2]) for m in matches]
            if not self._trailers or FORBIDDEN_TRAILERS.isdisjoint(k for k, _ in fields):
                self.fields += fields
                self._used = used
                return
        for line in lines:
            self._take_field(line, True)

    def _take_field(self, line: str, has_cr: bool) -> None:
        """Take one field line, without its line ending (``has_cr``: it ended in CRLF)."""
        # Limits come before the line's own shape so that a long malformed line gets the same
        # answer whether it arrives whole or byte by byte (see _check_size).
        self._check_size(len(line), 2)
        self._used += len(line) + 2
        if len(self.fields) >= self._limits.max_header_count:
            raise ProtocolError(431, "too many header fields")
        if not has_cr:
            raise ProtocolError(400, "bare LF line ending")
        match = FIELD_RE.fullmatch(line)
        if match is None:
            raise ProtocolError(400, field_problem(line))
        name = match[1].lower()
        if self._trailers and name in FORBIDDEN_TRAILERS:
            raise ProtocolError(400, f"{name} is not allowed as a trailer field")
        self.fields.append((name, match[2]))

    def _check_size(self, length: int, ending: int) -> None:
        """A field line of `length` bytes (plus `ending`) must fit the section and line caps."""
        limits = self._limits
        if self._used + length + ending > limits.max_header_bytes:
            raise ProtocolError(431, "header section too large")
        if limits.max_field_size is not None and length + ending > limits.max_field_size:
            raise ProtocolError(431, "header field too large")
