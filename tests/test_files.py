"""send_file through the server: types, validators, conditional GET, byte ranges, file wrappers."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning
from werkzeug.http import http_date, parse_date

from microwsgi import HTTPError, Server, make_response
from microwsgi.files import FileResponse, send_file

CONTENT = b"0123456789abcdefghij"  # 20 bytes: ranges are easy to read


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_bytes(CONTENT)
    # A fixed mtime keeps Last-Modified comparisons exact.
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


@pytest.fixture
def app(data_file: Path) -> webtest.TestApp:
    server = Server()

    @server.register("GET /file")
    def file(request: dict[str, Any]) -> FileResponse:
        return send_file(data_file)

    @server.register("GET /download")
    def download(request: dict[str, Any]) -> FileResponse:
        return send_file(data_file, download_name="report.csv", as_attachment=True)

    @server.register("GET /cached")
    def cached(request: dict[str, Any]) -> FileResponse:
        return send_file(data_file, max_age=3600)

    return webtest.TestApp(server)


# --- the plain 200 -----------------------------------------------------------------------------


def test_headers_and_body(app: webtest.TestApp) -> None:
    res = app.get("/file")
    assert res.status_int == 200
    assert res.body == CONTENT
    assert res.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert res.headers["Content-Length"] == "20"
    assert res.headers["Accept-Ranges"] == "bytes"
    assert res.headers["ETag"].startswith('"')
    assert parse_date(res.headers["Last-Modified"]) == datetime.fromtimestamp(
        1_700_000_000, timezone.utc
    )
    assert res.headers["Cache-Control"] == "no-cache"
    assert "Content-Disposition" not in res.headers


def test_max_age_makes_it_publicly_cacheable(app: webtest.TestApp) -> None:
    res = app.get("/cached")
    assert set(res.headers["Cache-Control"].split(", ")) == {"public", "max-age=3600"}


def test_attachment_with_download_name(app: webtest.TestApp) -> None:
    res = app.get("/download")
    assert res.headers["Content-Disposition"] == "attachment; filename=report.csv"
    assert res.headers["Content-Type"].startswith("text/csv")


def test_head_has_the_headers_and_no_body(app: webtest.TestApp) -> None:
    res = app.head("/file")
    assert res.status_int == 200
    assert res.headers["Content-Length"] == "20"
    assert res.body == b""


def test_etag_changes_when_the_file_changes(app: webtest.TestApp, data_file: Path) -> None:
    before = app.get("/file").headers["ETag"]
    data_file.write_bytes(CONTENT * 2)
    res = app.get("/file", headers={"If-None-Match": before})
    assert res.status_int == 200
    assert res.headers["ETag"] != before
    assert res.body == CONTENT * 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("page.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("image.png", "image/png"),
        ("no-extension", "application/octet-stream"),
        # A compressed file is the archive it is, never Content-Encoding: gzip.
        ("backup.tar.gz", "application/gzip"),
    ],
)
def test_content_type_from_the_name(tmp_path: Path, name: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    res = webtest.TestApp(send_file(path)).get("/")
    assert res.headers["Content-Type"] == expected
    assert "Content-Encoding" not in res.headers


def test_explicit_mimetype_wins(data_file: Path) -> None:
    res = webtest.TestApp(send_file(data_file, mimetype="application/x-custom")).get("/")
    assert res.headers["Content-Type"] == "application/x-custom"


# --- file objects ------------------------------------------------------------------------------


class TrackedBytesIO(io.BytesIO):
    closed_by_us = False

    def close(self) -> None:
        self.closed_by_us = True
        super().close()


def test_file_object_with_download_name() -> None:
    source = TrackedBytesIO(b"col\n1\n")
    app = webtest.TestApp(send_file(source, download_name="naïve data.csv", as_attachment=True))
    res = app.get("/")
    assert res.body == b"col\n1\n"
    assert res.headers["Content-Length"] == "6"
    # RFC 6266: an ASCII fallback plus the exact UTF-8 name.
    disposition = res.headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert "filename*=UTF-8''na%C3%AFve%20data.csv" in disposition
    assert "ETag" not in res.headers
    assert source.closed_by_us


def test_file_object_is_closed_when_no_body_is_sent() -> None:
    source = TrackedBytesIO(b"abc")
    res = webtest.TestApp(send_file(source, mimetype="text/plain")).head("/")
    assert res.body == b""
    assert source.closed_by_us


def test_file_object_read_from_its_position() -> None:
    source = io.BytesIO(b"skipme-payload")
    source.seek(7)
    res = webtest.TestApp(send_file(source, mimetype="text/plain")).get(
        "/", headers={"Range": "bytes=0-2"}
    )
    assert res.status_int == 206
    assert res.body == b"pay"
    assert res.headers["Content-Range"] == "bytes 0-2/7"


def test_file_object_needs_a_type() -> None:
    with pytest.raises(TypeError, match="mimetype"):
        send_file(io.BytesIO(b"x"))


def test_missing_path_fails_when_called(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        send_file(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        send_file(tmp_path)  # a directory is not a file


def test_download_name_must_be_a_bare_name(data_file: Path) -> None:
    with pytest.raises(ValueError, match="bare file name"):
        send_file(data_file, download_name="../evil.txt")


# --- conditional GET (RFC 9110 section 13) -----------------------------------------------------


def test_304_by_etag(app: webtest.TestApp) -> None:
    etag = app.get("/file").headers["ETag"]
    res = app.get("/file", headers={"If-None-Match": etag}, status=304)
    assert res.body == b""
    assert res.headers["ETag"] == etag
    assert "Content-Length" not in res.headers


def test_304_by_weak_etag_in_a_list(app: webtest.TestApp) -> None:
    etag = app.get("/file").headers["ETag"]
    app.get("/file", headers={"If-None-Match": f'"other", W/{etag}'}, status=304)


def test_200_when_etag_differs(app: webtest.TestApp) -> None:
    res = app.get("/file", headers={"If-None-Match": '"something-else"'})
    assert res.status_int == 200
    assert res.body == CONTENT


def test_304_by_if_modified_since(app: webtest.TestApp) -> None:
    last_modified = app.get("/file").headers["Last-Modified"]
    app.get("/file", headers={"If-Modified-Since": last_modified}, status=304)
    later = http_date(datetime(2030, 1, 1, tzinfo=timezone.utc))
    app.get("/file", headers={"If-Modified-Since": later}, status=304)


def test_200_when_modified_since(app: webtest.TestApp) -> None:
    earlier = http_date(datetime.fromtimestamp(1_700_000_000, timezone.utc) - timedelta(1))
    assert app.get("/file", headers={"If-Modified-Since": earlier}).status_int == 200


def test_if_none_match_takes_precedence_over_if_modified_since(app: webtest.TestApp) -> None:
    last_modified = app.get("/file").headers["Last-Modified"]
    res = app.get("/file", headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified})
    assert res.status_int == 200  # RFC 9110 section 13.2.2, step 3 before step 4


def test_304_on_head(app: webtest.TestApp) -> None:
    etag = app.get("/file").headers["ETag"]
    app.head("/file", headers={"If-None-Match": etag}, status=304)


def test_412_if_match_fails(app: webtest.TestApp) -> None:
    res = app.get("/file", headers={"If-Match": '"not-it"'}, status=412)
    assert res.headers["Content-Type"] == "application/json"
    assert res.json == {
        "status": 412,
        "error": HTTPError(412).reason,
        "message": "the file does not match If-Match",
    }


def test_if_match_passes(app: webtest.TestApp) -> None:
    etag = app.get("/file").headers["ETag"]
    assert app.get("/file", headers={"If-Match": etag}).status_int == 200
    assert app.get("/file", headers={"If-Match": "*"}).status_int == 200


def test_412_if_unmodified_since_is_earlier(app: webtest.TestApp) -> None:
    earlier = http_date(datetime(2000, 1, 1, tzinfo=timezone.utc))
    res = app.get("/file", headers={"If-Unmodified-Since": earlier}, status=412)
    assert res.json["message"] == "the file was modified after If-Unmodified-Since"


def test_conditional_false_always_sends(data_file: Path) -> None:
    app = webtest.TestApp(send_file(data_file, conditional=False))
    etag = app.get("/").headers["ETag"]
    assert app.get("/", headers={"If-None-Match": etag, "Range": "bytes=0-1"}).status_int == 200


# --- byte ranges (RFC 9110 section 14) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=0-4", b"01234", "bytes 0-4/20"),
        ("bytes=10-", b"abcdefghij", "bytes 10-19/20"),
        ("bytes=19-19", b"j", "bytes 19-19/20"),
        ("bytes=-3", b"hij", "bytes 17-19/20"),  # suffix range: the last 3 bytes
        ("bytes=-500", CONTENT, "bytes 0-19/20"),  # suffix longer than the file: all of it
        ("bytes=15-999", b"fghij", "bytes 15-19/20"),  # last-pos past the end is clipped
    ],
    ids=["first-five", "open-ended", "last-byte", "suffix", "long-suffix", "end-clipped"],
)
def test_206(app: webtest.TestApp, header: str, body: bytes, content_range: str) -> None:
    res = app.get("/file", headers={"Range": header}, status=206)
    assert res.body == body
    assert res.headers["Content-Range"] == content_range
    assert res.headers["Content-Length"] == str(len(body))
    assert res.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("header", ["bytes=20-", "bytes=100-200", "bytes=20-20, 30-"])
def test_416_when_start_is_beyond_the_end(app: webtest.TestApp, header: str) -> None:
    res = app.get("/file", headers={"Range": header}, status=416)
    assert res.headers["Content-Range"] == "bytes */20"
    assert res.headers["Content-Type"] == "application/json"
    assert res.json == {
        "status": 416,
        "error": HTTPError(416).reason,
        "message": "no requested range is within the file's 20 bytes",
    }


def test_multiple_ranges_get_200_or_multipart_206(app: webtest.TestApp) -> None:
    res = app.get("/file", headers={"Range": "bytes=0-1, 5-6"})
    if res.status_int == 206:
        assert res.headers["Content-Type"].startswith("multipart/byteranges")
    else:
        assert res.status_int == 200
        assert res.body == CONTENT


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-2", "items=0-4", "bytes=-0", "0-4"])
def test_invalid_or_foreign_range_is_ignored(app: webtest.TestApp, header: str) -> None:
    res = app.get("/file", headers={"Range": header})
    assert res.status_int == 200
    assert res.body == CONTENT


def test_range_ignored_on_head(app: webtest.TestApp) -> None:
    res = app.head("/file", headers={"Range": "bytes=0-4"})
    assert res.status_int == 200
    assert res.headers["Content-Length"] == "20"


def test_if_range_with_current_etag_gives_206(app: webtest.TestApp) -> None:
    etag = app.get("/file").headers["ETag"]
    res = app.get("/file", headers={"Range": "bytes=0-1", "If-Range": etag}, status=206)
    assert res.body == b"01"


def test_if_range_with_stale_validator_gives_everything(app: webtest.TestApp) -> None:
    res = app.get("/file", headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert res.status_int == 200
    assert res.body == CONTENT
    old_date = http_date(datetime(2001, 1, 1, tzinfo=timezone.utc))
    res = app.get("/file", headers={"Range": "bytes=0-1", "If-Range": old_date})
    assert res.status_int == 200


def test_if_range_with_exact_date_gives_206(app: webtest.TestApp) -> None:
    last_modified = app.get("/file").headers["Last-Modified"]
    res = app.get("/file", headers={"Range": "bytes=2-3", "If-Range": last_modified}, status=206)
    assert res.body == b"23"


def test_empty_file_ignores_ranges(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    res = webtest.TestApp(send_file(path)).get("/", headers={"Range": "bytes=0-"})
    assert res.status_int == 200
    assert res.body == b""


# --- serving machinery -------------------------------------------------------------------------


class RecordingWrapper:
    """A stand-in for a server's wsgi.file_wrapper (PEP 3333 "optional platform handling")."""

    instances: list[RecordingWrapper] = []

    def __init__(self, file: Any, block_size: int = 8192) -> None:
        self.file = file
        self.block_size = block_size
        RecordingWrapper.instances.append(self)

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.file.read(self.block_size), b"")

    def close(self) -> None:
        self.file.close()


def test_served_through_the_servers_file_wrapper(app: webtest.TestApp) -> None:
    RecordingWrapper.instances.clear()
    res = app.get("/file", extra_environ={"wsgi.file_wrapper": RecordingWrapper})
    assert res.body == CONTENT
    [wrapper] = RecordingWrapper.instances
    assert wrapper.file.closed


def test_a_range_does_not_use_the_file_wrapper(app: webtest.TestApp) -> None:
    # A file wrapper sends to the end of the file: a partial body must not go through it.
    RecordingWrapper.instances.clear()
    res = app.get(
        "/file",
        headers={"Range": "bytes=1-2"},
        extra_environ={"wsgi.file_wrapper": RecordingWrapper},
    )
    assert res.body == b"12"
    assert RecordingWrapper.instances == []


def test_a_path_response_can_be_served_repeatedly(data_file: Path) -> None:
    server = Server()
    shared = send_file(data_file)
    server.register_handler("GET /shared", lambda request: shared)
    app = webtest.TestApp(server)
    assert app.get("/shared", headers={"Range": "bytes=0-0"}).status_int == 206
    res = app.get("/shared")
    assert res.status_int == 200
    assert res.body == CONTENT


def test_middleware_headers_survive(data_file: Path) -> None:
    def stamp(next: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            response = make_response(next(request), request)
            response.headers["X-Stamp"] = "yes"
            return response

        return handler

    server = Server()
    server.register_handler("GET /f", lambda request: send_file(data_file), stamp)
    app = webtest.TestApp(server)
    assert app.get("/f").headers["X-Stamp"] == "yes"
    res = app.get("/f", headers={"Range": "bytes=0-0"}, status=206)
    assert res.headers["X-Stamp"] == "yes"
    etag = res.headers["ETag"]
    assert app.get("/f", headers={"If-None-Match": etag}, status=304).headers["X-Stamp"] == "yes"


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 200),
        ("HEAD", {}, 200),
        ("GET", {"Range": "bytes=2-5"}, 206),
        ("GET", {"Range": "bytes=50-"}, 416),
        ("GET", {"If-Match": '"nope"'}, 412),
        ("GET", {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, 304),
    ],
)
def test_every_outcome_passes_the_wsgi_validator(
    data_file: Path, method: str, headers: dict[str, str], status: int
) -> None:
    server = Server()
    server.register_handler("GET /f", lambda request: send_file(data_file))
    app = webtest.TestApp(validator(server))
    res = app.request("/f", method=method, headers=headers, expect_errors=True)
    assert res.status_int == status
