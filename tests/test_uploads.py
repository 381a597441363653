"""Multipart uploads: streamed to disk rather than held in memory, and bounded by the caps."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path
from typing import Any

import webtest

from microwsgi import Server

BOUNDARY = "----microwsgi-upload-test"
UPLOAD_SIZE = 20 * 1024 * 1024


def multipart_file(tmp_path: Path, size: int) -> tuple[Path, str]:
    """Write a multipart body with one `doc` file of `size` bytes to disk; return its sha256."""
    body = tmp_path / "body.bin"
    digest = hashlib.sha256()
    block = bytes(range(256)) * 256  # 64 KiB of varied bytes
    with body.open("wb") as out:
        out.write(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nreport\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="doc"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        left = size
        while left:
            piece = block[: min(left, len(block))]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return body, digest.hexdigest()


def upload_server(**options: Any) -> Server:
    server = Server(**options)

    @server.register("POST /upload")
    def upload(request: dict[str, Any]) -> dict[str, Any]:
        stored = request["files"]["doc"]
        digest = hashlib.sha256()
        while chunk := stored.stream.read(65536):
            digest.update(chunk)
        return {"title": request["form"]["title"], "sha256": digest.hexdigest()}

    return server


def call(server: Server, body: Path) -> tuple[str, dict[str, Any] | bytes]:
    status_seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status_seen.append(status)
        return lambda data: None

    with body.open("rb") as stream:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/upload",
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
            "CONTENT_LENGTH": str(body.stat().st_size),
            "wsgi.input": stream,
            "wsgi.url_scheme": "http",
        }
        iterable = server(environ, start_response)
        try:
            answer = b"".join(iterable)
        finally:
            getattr(iterable, "close", lambda: None)()
    return status_seen[0], json.loads(answer) if answer.startswith(b"{") else answer


def test_a_20_mb_upload_does_not_sit_in_memory(tmp_path: Path) -> None:
    body, expected = multipart_file(tmp_path, UPLOAD_SIZE)
    server = upload_server(max_body_size=64 * 1024 * 1024)
    tracemalloc.start()
    try:
        status, answer = call(server, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == "200 OK"
    assert answer == {"title": "report", "sha256": expected}
    # The whole file passed through; the Python heap never held more than a few buffers of it.
    assert peak < UPLOAD_SIZE / 10, f"peak traced memory {peak} bytes for a {UPLOAD_SIZE} upload"


def test_an_upload_over_max_body_size_is_413_before_parsing(tmp_path: Path) -> None:
    body, _ = multipart_file(tmp_path, 2 * 1024 * 1024)
    status, answer = call(upload_server(max_body_size=1024 * 1024), body)
    assert status.startswith("413")
    assert isinstance(answer, dict) and answer["status"] == 413


def test_too_many_form_parts_is_413() -> None:
    app = webtest.TestApp(upload_server(max_form_parts=3))
    fields = [(f"field{i}", "x") for i in range(10)]
    response = app.post("/upload", fields, upload_files=[("doc", "a.txt", b"a")], status=413)
    assert response.json["status"] == 413


def test_a_form_field_over_the_memory_cap_is_413() -> None:
    server = Server(max_form_memory_size=1024)

    @server.register("POST /form")
    def form(request: dict[str, Any]) -> dict[str, Any]:
        return {"size": len(request["form"]["big"])}

    app = webtest.TestApp(server)
    assert app.post("/form", {"big": "x" * 100}).json == {"size": 100}
    big = "x" * 4096
    response = app.post("/form", {"big": big}, content_type="multipart/form-data", status=413)
    assert response.json["status"] == 413
