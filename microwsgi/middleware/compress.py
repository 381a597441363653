"""``compress(...)``: answers compressed with gzip, or Brotli when it is installed, as the client
accepts (RFC 9110 §8.4 Content-Encoding, §12.5.3 Accept-Encoding).

The coding is chosen from the request's Accept-Encoding with its q-values, parsed by werkzeug:
the highest q above 0 among the codings offered (``br`` before ``gzip`` at equal q); no
Accept-Encoding, or none acceptable, means the answer goes as it is. An answer that could have
been compressed gets ``Vary: Accept-Encoding`` whatever the client asked, so that caches keep
the versions apart; a strong ETag on a compressed answer becomes weak, since the bytes differ
from the identity representation's. Streamed answers are compressed as they stream, each chunk
flushed so that it reaches the client when the handler yields it. Chaining middleware is the
core's business; ``conditional.py`` gives answers their ETags.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from werkzeug.http import parse_accept_header
from werkzeug.wrappers import Response

from ..chains import Handler, Middleware
from ..request import request_header
from ..response import add_vary, make_response

__all__ = ["compress"]

# Statuses whose body is absent or a part of the representation (RFC 9110 §15.3.5, §15.3.7,
# §15.4.5): nothing to compress, or compressing would break the ranges.
_LEFT_ALONE = frozenset({204, 206, 304})
_TEXT_TYPES = frozenset(
    {"application/json", "application/javascript", "application/xml", "image/svg+xml"}
)


def _compressible(mimetype: str) -> bool:
    """Types that shrink: text, JSON, JavaScript, XML, SVG. Images, audio, video and archives
    are compressed already."""
    return (
        mimetype.startswith("text/")
        or mimetype in _TEXT_TYPES
        or mimetype.endswith(("+json", "+xml"))
    )


class _Stream(Protocol):
    def compress(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _GzipStream:
    def __init__(self, level: int) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing

    def compress(self, chunk: bytes) -> bytes:
        # A sync flush ends each chunk on a byte boundary the client can decode up to.
        return self._zlib.compress(chunk) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._zlib.flush(zlib.Z_FINISH)


class _BrotliStream:
    def __init__(self, level: int) -> None:
        import brotli

        self._brotli = brotli.Compressor(quality=level)

    def compress(self, chunk: bytes) -> bytes:
        return bytes(self._brotli.process(chunk) + self._brotli.flush())

    def finish(self) -> bytes:
        return bytes(self._brotli.finish())


def _gzip_whole(data: bytes, level: int) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)  # mtime 0: the same bytes each time


def _brotli_whole(data: bytes, level: int) -> bytes:
    import brotli

    return bytes(brotli.compress(data, quality=level))


class _Coding:
    """One content coding: its token, and how to compress a whole body or a stream."""

    def __init__(
        self,
        token: str,
        whole: Callable[[bytes, int], bytes],
        stream: Callable[[int], _Stream],
    ) -> None:
        self.token = token
        self.whole = whole
        self.stream = stream


def _codings() -> tuple[_Coding, ...]:
    """The codings offered, preferred first at equal q: br only when brotli is installed."""
    gzip_coding = _Coding("gzip", _gzip_whole, _GzipStream)
    try:
        import brotli  # noqa: F401 - only whether it is there
    except ImportError:
        return (gzip_coding,)
    return (_Coding("br", _brotli_whole, _BrotliStream), gzip_coding)


def choose_coding(accept_encoding: str | None, codings: tuple[_Coding, ...]) -> _Coding | None:
    """The coding to answer with, or None for the identity (RFC 9110 §12.5.3: no header means
    any coding is acceptable, but a client that sends none is better served as it is)."""
    if not accept_encoding:
        return None
    accepted = parse_accept_header(accept_encoding)
    best: _Coding | None = None
    best_q = 0.0
    for coding in codings:
        # `quality` weighs ``*`` and an explicit ``;q=0`` as the RFC says.
        q = accepted.quality(coding.token)
        if q > best_q:
            best, best_q = coding, q
    return best


def _compressed_stream(source: Iterable[bytes], stream: _Stream) -> Iterator[bytes]:
    for chunk in source:
        out = stream.compress(chunk)
        if out:
            yield out
    yield stream.finish()


class _Compress:
    """What ``compress(...)`` returns: a PyMicroHTTP-style middleware holding its settings."""

    def __init__(self, min_size: int, level: int) -> None:
        self.min_size = min_size
        self.level = level
        self.codings = _codings()
        self.__name__ = "compress"

    def __call__(self, next: Handler) -> Handler:
        def handler(request: dict[str, Any]) -> Any:
            response = make_response(next(request), request)
            if request["verb"] == "HEAD" or not self._eligible(request, response):
                return response
            length = None if response.is_streamed else response.content_length
            if length is not None and length < self.min_size:
                return response
            add_vary(response.headers, "Accept-Encoding")
            coding = choose_coding(request_header(request, "Accept-Encoding"), self.codings)
            if coding is not None:
                self._encode(response, coding)
            return response

        return handler

    def _eligible(self, request: dict[str, Any], response: Response) -> bool:
        headers = response.headers
        return (
            response.status_code >= 200
            and response.status_code not in _LEFT_ALONE
            and "Content-Encoding" not in headers
            and "Content-Range" not in headers
            and request_header(request, "Range") is None
            # RFC 9111 §5.2.2.6: no-transform forbids changing the content.
            and "no-transform" not in response.cache_control
            and _compressible(response.mimetype or "")
        )

    def _encode(self, response: Response, coding: _Coding) -> None:
        if response.is_streamed:
            source = response.response
            response.response = _compressed_stream(
                response.iter_encoded(), coding.stream(self.level)
            )
            close = getattr(source, "close", None)
            if close is not None:
                response.call_on_close(close)  # the handler's generator runs its finally
            response.headers.pop("Content-Length", None)
        else:
            data = response.get_data()
            packed = coding.whole(data, self.level)
            if len(packed) >= len(data):
                return  # it did not shrink: the identity is the better answer
            response.set_data(packed)
        response.headers["Content-Encoding"] = coding.token
        etag, weak = response.get_etag()
        if etag is not None and not weak:
            response.set_etag(etag, weak=True)


def compress(*, min_size: int = 500, level: int = 6) -> Middleware:
    """Compress the answers of the routes it wraps with gzip (or ``br`` when the brotli
    package is installed), as the request's Accept-Encoding accepts.

    Compressed: text (``text/*``), JSON, JavaScript, XML and SVG (``+json`` and ``+xml``
    types too) of at least `min_size` bytes, at `level` (1 fastest to 9 smallest; Brotli's
    quality takes the same number). Left as they are: bodies under `min_size`, HEAD, 204, 206
    and 304 answers and any answer to a request with Range, answers that already have a
    Content-Encoding or say ``Cache-Control: no-transform``, and other types. Streamed answers
    are compressed as they stream, each chunk flushed. ``Vary: Accept-Encoding`` is added to
    every answer it could have compressed; a strong ETag on a compressed answer becomes weak.
    """
    if not 1 <= level <= 9:
        raise ValueError(f"compress(level={level!r}): level must be from 1 to 9")
    if min_size < 0:
        raise ValueError(f"compress(min_size={min_size!r}): min_size must be 0 or more")
    return _Compress(min_size, level)
