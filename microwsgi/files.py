"""Files on the wire: ``send_file``.

This module owns everything between "a handler wants to answer with a file" and the bytes the
WSGI server sends: the media type guessed from the name, the validators (ETag, Last-Modified),
conditional requests (RFC 9110 section 13: 304 and 412), byte ranges (RFC 9110 section 14: 206
and 416), and handing the open file to ``wsgi.file_wrapper`` so a server can use ``sendfile``.
Parsing and comparing validators and ranges is werkzeug's (``is_resource_modified``,
``parse_range_header``, ``Range.range_for_length``, ``ContentRange``); what is ours is the policy
on top: several ranges get the whole file, a suffix longer than the file gets all of it, a
compressed file is never announced as a ``Content-Encoding``, and 412/416 are the framework's
JSON error shape. Which request paths may name a file in a static folder is ``static.py``'s.

``send_file`` needs no request: it returns a :class:`FileResponse`, a werkzeug ``Response``
whose conditional and range decisions are made when the core serves it with the environ.
"""

from __future__ import annotations

import json
import mimetypes
import os
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO
from urllib.parse import quote

from werkzeug.datastructures import ContentRange, Headers, Range
from werkzeug.http import (
    parse_date,
    parse_etags,
    parse_if_range_header,
    parse_range_header,
    quote_etag,
    unquote_etag,
)
from werkzeug.sansio.http import is_resource_modified
from werkzeug.wrappers import Response
from werkzeug.wsgi import FileWrapper

from ._http import status_line
from ._wsgi import StartResponse, WSGIEnvironment
from .errors import HTTPError

__all__ = ["send_file"]

# Large enough that a Python-level copy is not dominated by per-chunk overhead, small enough
# that many concurrent downloads do not hold much memory.
CHUNK_SIZE = 64 * 1024

# A compressed file is served as the archive it is. Announcing it as, say, ``text/css`` with
# ``Content-Encoding: gzip`` would make clients decompress it on the fly, which is wrong for a
# download and breaks byte ranges (ranges would address the compressed bytes).
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
    "compress": "application/x-compress",
}


def _guess_mimetype(name: str) -> str:
    mimetype, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return mimetype or "application/octet-stream"


def _content_disposition(headers: Headers, download_name: str, as_attachment: bool) -> None:
    # werkzeug applies this rule inside its own send_file (which needs the environ up front and
    # sends Content-Encoding for .gz files) and exposes no helper for it: the same lines here.
    kind = "attachment" if as_attachment else "inline"
    try:
        download_name.encode("ascii")
    except UnicodeEncodeError:
        # RFC 6266 section 4.3: an ASCII ``filename`` for old clients, the exact name as the
        # RFC 8187 ``filename*`` that current clients prefer.
        simple = unicodedata.normalize("NFKD", download_name).encode("ascii", "ignore").decode()
        encoded = quote(download_name, safe="!#$&+-.^_`|~")
        headers.set(
            "Content-Disposition", kind, filename=simple, **{"filename*": f"UTF-8''{encoded}"}
        )
    else:
        headers.set("Content-Disposition", kind, filename=download_name)


def _file_size(file: IO[bytes]) -> tuple[int | None, float | None]:
    """Bytes left from the current position and the mtime, when the object can tell them."""
    try:
        st = os.fstat(file.fileno())
    except (AttributeError, OSError, ValueError):
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return max(st.st_size - file.tell(), 0), st.st_mtime
    if getattr(file, "seekable", lambda: False)():
        here = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(here)
        return end - here, None
    return None, None


class _RangeBody:
    """The bytes ``[start, start + length)`` of a file, as a closeable WSGI iterable.

    A server's ``wsgi.file_wrapper`` sends the file to its end, so a partial body cannot use it.
    """

    def __init__(self, file: IO[bytes], start: int, length: int) -> None:
        self.file = file
        self.remaining = length
        file.seek(start, os.SEEK_CUR)

    def __iter__(self) -> Iterator[bytes]:
        while self.remaining > 0:
            chunk = self.file.read(min(CHUNK_SIZE, self.remaining))
            if not chunk:
                # The file shrank after its size was announced: stop rather than pad; the
                # server sees a short body and drops the connection, which is all it can do.
                return
            self.remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


def _if_match_holds(header: str, etag: str | None) -> bool:
    # RFC 9110 section 13.1.1: a strong comparison (never true for a weak validator); '*'
    # matches any current representation, which a file being served is.
    etags = parse_etags(header)
    if etags.star_tag:
        return True
    if etag is None:
        return False
    value, weak = unquote_etag(etag)
    return not weak and etags.is_strong(value)


def not_modified(
    environ: WSGIEnvironment, etag: str | None, last_modified: datetime | str | None
) -> bool:
    """Whether the client's copy is current, so a GET or HEAD gets 304 (RFC 9110 section 13.1.2:
    If-None-Match, weak comparison; section 13.1.3: If-Modified-Since, ignored next to
    If-None-Match). The one 304 rule: ``send_file`` and ``conditional()`` use it."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    return not is_resource_modified(
        http_if_none_match=if_none_match,
        http_if_modified_since=(
            None if if_none_match is not None else environ.get("HTTP_IF_MODIFIED_SINCE")
        ),
        etag=etag,
        last_modified=last_modified,
    )


def _byte_span(start: int, stop: int | None, size: int) -> tuple[int, int] | None:
    """One range of a Range header as ``(start, stop)`` within `size` bytes, or None."""
    if stop is None and start < -size:
        # RFC 9110 section 14.1.3: a suffix longer than the representation means all of it
        # (werkzeug's range_for_length refuses it).
        start = -size
    return Range("bytes", [(start, stop)]).range_for_length(size)


def _error_body(status: int, message: str) -> bytes:
    return json.dumps(HTTPError(status, message).to_dict()).encode()


class FileResponse(Response):
    """A file answer that settles 304/412/206/416 against the environ it is served with.

    Headers (type, length, validators, caching, disposition) are set when it is built, so
    middleware sees and may extend them; the file is opened only when a body is sent. Built
    from a path it can be served any number of times (its headers describe the file as it
    was when ``send_file`` ran); built from a file object, once. Its 412 and 416 answers are
    decided as it is sent, after the error handlers: they always have the default JSON shape.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        mimetype: str,
        size: int | None,
        etag: str | None,
        last_modified: datetime | None,
        conditional: bool,
    ) -> None:
        super().__init__(mimetype=mimetype)
        self._source = source
        self._size = size
        self._conditional = conditional
        if size is not None:
            self.content_length = size
        if etag is not None:
            self.headers["ETag"] = etag
        if last_modified is not None:
            self.last_modified = last_modified
        if size is not None and conditional:
            self.accept_ranges = "bytes"

    def _precondition_failure(self, environ: WSGIEnvironment) -> tuple[int, str] | None:
        """``(412 or 304, why)`` when a precondition decides the answer (RFC 9110 13.2.2)."""
        etag = self.headers.get("ETag")
        modified = self.last_modified
        if_match = environ.get("HTTP_IF_MATCH")
        if if_match is not None:
            if not _if_match_holds(if_match, etag):
                return 412, "the file does not match If-Match"
        else:
            since = parse_date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
            if since is not None and modified is not None and modified > since:
                return 412, "the file was modified after If-Unmodified-Since"
        if not_modified(environ, etag, modified):
            return 304, "not modified"
        return None

    def _if_range_holds(self, environ: WSGIEnvironment) -> bool:
        value = environ.get("HTTP_IF_RANGE")
        if value is None:
            return True
        # RFC 9110 section 13.1.5: an entity tag compares strongly (werkzeug's parser drops
        # the weak mark, so a weak one is refused here); a date must equal Last-Modified.
        if_range = parse_if_range_header(value)
        if if_range.etag is not None:
            etag = self.headers.get("ETag")
            weak = value.lstrip().startswith("W/")
            return not weak and etag is not None and unquote_etag(etag)[0] == if_range.etag
        return if_range.date is not None and if_range.date == self.last_modified

    def _byte_range(self, environ: WSGIEnvironment) -> tuple[int, tuple[int, int] | None]:
        """``(206, (start, stop))``, ``(416, None)``, or ``(200, None)`` to send everything.

        RFC 9110 section 14.2 lets a server ignore Range, and we do for anything but a
        satisfiable request on GET: unknown units, unparsable values, and several ranges
        (answered with the whole file, which every client accepts; it also spares us the
        multipart/byteranges amplification that many small ranges invite).
        """
        size = self._size
        if not size or environ["REQUEST_METHOD"] != "GET":
            return 200, None
        parsed = parse_range_header(environ.get("HTTP_RANGE"))
        if parsed is None or parsed.units != "bytes" or not self._if_range_holds(environ):
            return 200, None
        spans = [_byte_span(start, stop, size) for start, stop in parsed.ranges]
        if not any(spans):
            return 416, None
        if len(spans) > 1:
            return 200, None
        return 206, spans[0]

    def _open(self) -> IO[bytes]:
        if isinstance(self._source, (str, os.PathLike)):
            return open(self._source, "rb")  # closed by the WSGI iterable
        return self._source

    def _discard_source(self) -> None:
        if not isinstance(self._source, (str, os.PathLike)):
            self._source.close()

    def _outcome(self, environ: WSGIEnvironment) -> tuple[int, tuple[int, int] | None, str]:
        if (
            not self._conditional
            or self.status_code != 200
            or environ["REQUEST_METHOD"] not in ("GET", "HEAD")
        ):
            return self.status_code, None, ""
        decided = self._precondition_failure(environ)
        if decided is not None:
            return decided[0], None, decided[1]
        status, span = self._byte_range(environ)
        return status, span, f"no requested range is within the file's {self._size} bytes"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # A fresh response per call keeps this object reusable and unchanged by serving.
        status, byte_range, why = self._outcome(environ)
        headers = Headers(self.headers)
        if status in (412, 416):
            self._discard_source()
            for name in ("Content-Length", "Content-Type", "Content-Disposition"):
                headers.remove(name)
            if status == 416:
                headers["Content-Range"] = ContentRange("bytes", None, None, self._size).to_header()
            error = Response(
                _error_body(status, why), status_line(status), headers, mimetype="application/json"
            )
            return error(environ, start_response)
        body: Iterable[bytes] = ()
        if environ["REQUEST_METHOD"] == "HEAD" or status == 304:
            self._discard_source()
        elif byte_range is None:
            wrapper = environ.get("wsgi.file_wrapper", FileWrapper)
            body = wrapper(self._open(), CHUNK_SIZE)
        else:
            start, stop = byte_range
            body = _RangeBody(self._open(), start, stop - start)
            headers["Content-Range"] = ContentRange("bytes", start, stop, self._size).to_header()
            headers["Content-Length"] = str(stop - start)
        response = Response(body, status_line(status), headers, direct_passthrough=True)
        return response(environ, start_response)


def send_file(
    path_or_file: str | os.PathLike[str] | IO[bytes],
    mimetype: str | None = None,
    download_name: str | None = None,
    as_attachment: bool = False,
    *,
    max_age: int | None = None,
    etag: bool | str = True,
    last_modified: datetime | float | None = None,
    conditional: bool = True,
) -> FileResponse:
    """Answer with a file: ``return send_file('report.pdf', as_attachment=True)``.

    ``path_or_file`` is a path (trusted: never build it from the request, use
    :func:`static_handler` for that) or a binary file object, read from its current position
    and closed after the response. The media type comes from ``mimetype``, else from
    ``download_name`` or the path's name. A path gets ``ETag`` and ``Last-Modified`` from its
    size and mtime; pass ``etag='...'`` to choose one, ``etag=False`` for none. ``max_age``
    (seconds) makes it publicly cacheable; without it clients revalidate every time (cheap:
    a 304). ``conditional=False`` turns off 304/412 and Range handling.
    Raises ``FileNotFoundError`` if the path does not name a regular file.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        path = os.fspath(path_or_file)
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"not a regular file: {path!r}")
        size: int | None = st.st_size
        mtime: float | None = st.st_mtime
        name: str | None = os.path.basename(path)
        auto_etag = f"{st.st_mtime_ns:x}-{st.st_size:x}"
    else:
        if not hasattr(path_or_file, "read"):
            raise TypeError(f"send_file needs a path or a binary file object, got {path_or_file!r}")
        size, mtime = _file_size(path_or_file)
        name = None
        auto_etag = None
    if download_name is None:
        download_name = name
    elif os.path.basename(download_name) != download_name:
        raise ValueError(f"download_name must be a bare file name, got {download_name!r}")
    if mimetype is None:
        if download_name is None:
            raise TypeError("send_file needs mimetype= or download_name= for a file object")
        mimetype = _guess_mimetype(download_name)
    if as_attachment and download_name is None:
        raise TypeError("as_attachment=True needs download_name= for a file object")

    if isinstance(last_modified, (int, float)):
        last_modified = datetime.fromtimestamp(last_modified, timezone.utc)
    elif last_modified is None and mtime is not None:
        last_modified = datetime.fromtimestamp(int(mtime), timezone.utc)
    if isinstance(etag, str):
        etag_value: str | None = quote_etag(etag)
    else:
        etag_value = quote_etag(auto_etag) if etag and auto_etag else None

    response = FileResponse(
        path_or_file,
        mimetype=mimetype,
        size=size,
        etag=etag_value,
        last_modified=last_modified,
        conditional=conditional,
    )
    if download_name is not None and (as_attachment or name != download_name):
        _content_disposition(response.headers, download_name, as_attachment)
    if max_age is None:
        response.cache_control.no_cache = True
    else:
        response.cache_control.public = max_age > 0
        response.cache_control.max_age = max_age
    return response
