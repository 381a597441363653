"""compress(): gzip (and br) chosen by Accept-Encoding's q-values, the raw bytes decoded by the
standard library (WebTest gunzips silently and drops Content-Encoding, so these tests read the
WSGI answer themselves), Vary, weak ETags, what is left alone, streams compressed as they go."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tools

from microwsgi import Server, compress, conditional

TEXT = "microwsgi compresses text answers. " * 40  # 1,400 bytes, repetitive: it shrinks
WSGICall = Any  # tests/conftest.py's WSGICall: status, headers, header(), code, body
CallWSGI = Callable[..., WSGICall]


@pytest.fixture
def server() -> Server:
    server = Server()
    server.before_all(compress())

    @server.get("/text")
    def text(request: dict[str, Any]) -> Any:
        return TEXT

    @server.get("/json")
    def json_answer(request: dict[str, Any]) -> Any:
        return {"items": [TEXT]}

    @server.get("/small")
    def small(request: dict[str, Any]) -> Any:
        return "tiny"

    @server.get("/png")
    def png(request: dict[str, Any]) -> Any:
        return TEXT.encode(), 200, {"Content-Type": "image/png"}

    @server.get("/svg")
    def svg(request: dict[str, Any]) -> Any:
        return f"<svg>{TEXT}</svg>", 200, {"Content-Type": "image/svg+xml"}

    @server.get("/encoded")
    def encoded(request: dict[str, Any]) -> Any:
        return gzip.compress(TEXT.encode()), 200, {"Content-Encoding": "gzip",
                                                   "Content-Type": "text/plain"}  # fmt: skip

    @server.get("/no-transform")
    def no_transform(request: dict[str, Any]) -> Any:
        return TEXT, 200, {"Cache-Control": "no-transform"}

    @server.get("/tagged")
    def tagged(request: dict[str, Any]) -> Any:
        return TEXT, 200, {"ETag": '"v1"'}

    @server.get("/status/:code<int>")
    def status(request: dict[str, Any]) -> Any:
        return TEXT, request["params"]["code"]

    @server.get("/stream")
    def stream(request: dict[str, Any]) -> Iterator[str]:
        for n in range(5):
            yield f"line {n}: {TEXT}\n"

    return server


def get(call_wsgi: CallWSGI, server: Server, path: str, **headers: str) -> tuple[WSGICall, bytes]:
    method = headers.pop("method", "GET")
    environ = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    result = call_wsgi(server, path, environ=environ, method=method)
    body = b"".join(result.body)
    close = getattr(result.body, "close", None)
    if close is not None:
        close()
    return result, body


def test_gzip_body_is_decoded_by_the_standard_library(call_wsgi: CallWSGI, server: Server) -> None:
    result, body = get(call_wsgi, server, "/text", accept_encoding="gzip")
    assert result.header("Content-Encoding") == "gzip"
    assert result.header("Vary") == "Accept-Encoding"
    assert int(result.header("Content-Length") or 0) == len(body) < len(TEXT)
    assert gzip.decompress(body).decode() == TEXT
    assert result.header("Content-Type") == "text/plain; charset=utf-8"


def test_json_and_svg_are_compressed(call_wsgi: CallWSGI, server: Server) -> None:
    for path in ("/json", "/svg"):
        result, body = get(call_wsgi, server, path, accept_encoding="gzip")
        assert result.header("Content-Encoding") == "gzip", path
        assert TEXT in gzip.decompress(body).decode()


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),  # equal q: br first
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0.1", "gzip"),
        ("gzip;q=0", None),
        ("gzip;q=0, br;q=0", None),
        ("*", "br"),
        ("*;q=0.5, br;q=0", "gzip"),
        ("identity", None),
        ("identity, *;q=0", None),
        ("deflate, compress", None),
        ("GZIP", "gzip"),  # codings are case-insensitive (RFC 9110 §8.4.1)
        ("", None),
    ],
)
def test_q_values_choose_the_coding(
    call_wsgi: CallWSGI, server: Server, accept: str, coding: str | None
) -> None:
    brotli = tools.require_extra("brotli")  # the cases expect br on offer
    result, body = get(call_wsgi, server, "/text", accept_encoding=accept)
    assert result.header("Content-Encoding") == coding
    assert result.header("Vary") == "Accept-Encoding"
    decoded = {"gzip": gzip.decompress, "br": brotli.decompress, None: bytes}[coding](body)
    assert decoded.decode() == TEXT


def test_no_accept_encoding_means_identity(call_wsgi: CallWSGI, server: Server) -> None:
    result, body = get(call_wsgi, server, "/text")
    assert result.header("Content-Encoding") is None
    assert result.header("Vary") == "Accept-Encoding"  # it could have been compressed
    assert body.decode() == TEXT


@pytest.mark.parametrize("path", ["/small", "/png", "/encoded", "/no-transform"])
def test_answers_left_alone_get_no_vary(call_wsgi: CallWSGI, server: Server, path: str) -> None:
    plain, plain_body = get(call_wsgi, server, path)
    result, body = get(call_wsgi, server, path, accept_encoding="gzip, br")
    assert body == plain_body
    assert result.header("Vary") is None
    assert result.header("Content-Encoding") == plain.header("Content-Encoding")


@pytest.mark.parametrize("code", [204, 206, 304])
def test_statuses_without_a_whole_body_are_left_alone(
    call_wsgi: CallWSGI, server: Server, code: int
) -> None:
    result, _ = get(call_wsgi, server, f"/status/{code}", accept_encoding="gzip")
    assert result.code == code and result.header("Content-Encoding") is None


def test_errors_are_compressed_too(call_wsgi: CallWSGI, server: Server) -> None:
    result, body = get(call_wsgi, server, "/status/503", accept_encoding="gzip")
    assert result.code == 503 and gzip.decompress(body).decode() == TEXT


def test_head_and_range_requests_are_left_alone(call_wsgi: CallWSGI, server: Server) -> None:
    head, body = get(call_wsgi, server, "/text", accept_encoding="gzip", method="HEAD")
    assert head.header("Content-Encoding") is None and body == b""
    ranged, body = get(call_wsgi, server, "/text", accept_encoding="gzip", range="bytes=0-9")
    assert ranged.header("Content-Encoding") is None and body.decode() == TEXT


def test_a_strong_etag_becomes_weak(call_wsgi: CallWSGI, server: Server) -> None:
    result, _ = get(call_wsgi, server, "/tagged", accept_encoding="gzip")
    assert result.header("ETag") == 'W/"v1"'
    plain, _ = get(call_wsgi, server, "/tagged")
    assert plain.header("ETag") == '"v1"'


def test_a_stream_is_compressed_chunk_by_chunk(call_wsgi: CallWSGI, server: Server) -> None:
    result = call_wsgi(server, "/stream", environ={"HTTP_ACCEPT_ENCODING": "gzip"})
    assert result.header("Content-Encoding") == "gzip"
    assert result.header("Content-Length") is None
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    chunks = iter(result.body)
    # Each chunk the handler yields can be decoded as soon as it arrives: it was flushed.
    for n in range(5):
        assert decoder.decompress(next(chunks)).decode() == f"line {n}: {TEXT}\n"
    rest = b"".join(chunks)
    assert decoder.decompress(rest) == b"" and decoder.eof
    result.body.close()  # type: ignore[attr-defined]


def test_a_stream_broken_off_closes_the_handlers_generator(call_wsgi: CallWSGI) -> None:
    tools.require_extra("brotli")  # the br stream is the one broken off
    closed = []
    server = Server()

    @server.get("/stream", compress())
    def stream(request: dict[str, Any]) -> Iterator[str]:
        try:
            for n in range(100):
                yield f"{n} {TEXT}"
        finally:
            closed.append(True)

    result = call_wsgi(server, "/stream", environ={"HTTP_ACCEPT_ENCODING": "br"})
    assert result.header("Content-Encoding") == "br"
    next(iter(result.body))
    result.body.close()  # type: ignore[attr-defined]
    assert closed == [True]


def test_with_conditional_the_etag_is_weak_and_still_matches(call_wsgi: CallWSGI) -> None:
    server = Server()
    server.before_all(compress())
    server.before_all(conditional())

    @server.get("/text")
    def text(request: dict[str, Any]) -> Any:
        return TEXT

    first, _ = get(call_wsgi, server, "/text", accept_encoding="gzip")
    etag = first.header("ETag")
    assert etag is not None and etag.startswith('W/"')
    again, body = get(call_wsgi, server, "/text", accept_encoding="gzip", if_none_match=etag)
    assert again.code == 304 and body == b""


@pytest.mark.parametrize(
    ("options", "message"),
    [({"level": 0}, "level must be from 1 to 9"), ({"min_size": -1}, "min_size must be 0")],
)
def test_bad_settings_are_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compress(**options)
