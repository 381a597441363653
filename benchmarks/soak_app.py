"""The WSGI app every soak and live-fuzz target serves (plain PEP 3333, standard library only).

Every answer can be checked by the client that asked for it:

- ``GET /small?n=NONCE``: ``small NONCE`` (the keep-alive, pipelined and slow-header clients).
- ``POST /upload`` with ``X-Sha256``: the app reads the body in blocks (Content-Length or
  chunked), hashes it and answers ``ok SIZE SHA256``, or 422 ``mismatch ...``.
- ``GET /download?size=N&seed=S[&stream=1]``: N bytes of block ``S`` (of ``SEEDS``) repeated,
  with a Content-Length, or (``stream=1``) without one, so the server frames it itself. The
  blocks are made at import: the app's memory stays flat, so a soak's RSS figures are the
  server's.
- ``POST /slow``: streams ``started\\n`` at once, then reads the request body, then sends
  ``done SIZE\\n``: with the body held back, the request stays in flight for as long as the
  client wants (the graceful-shutdown check), without a sleep anywhere.
- anything else: the body is read, and the method, body length and SHA-256 come back in
  ``X-Method``, ``X-Body-Length`` and ``X-Body-Sha256`` with an empty body (the live fuzz).

It leaves starting servers to ``soak_targets.py`` and driving traffic to ``soak.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

BLOCK = 65536
SEEDS = 16
MAX_DOWNLOAD = 64 << 20

StartResponse = Callable[..., Any]


def _block(seed: int) -> bytes:
    """The 64 KiB block a download with this seed repeats (deterministic, incompressible)."""
    out = b"".join(hashlib.sha256(b"%d:%d" % (seed, i)).digest() for i in range(BLOCK // 32))
    return out[:BLOCK]


BLOCKS = [_block(seed) for seed in range(SEEDS)]


def download_blocks(size: int, seed: int) -> Iterator[bytes]:
    """The body of ``/download?size=size&seed=seed``, block by block."""
    block = BLOCKS[seed]
    whole, rest = divmod(size, BLOCK)
    for _ in range(whole):
        yield block
    if rest:
        yield block[:rest]


def _read_body(environ: dict[str, Any]) -> tuple[int, str]:
    """Length and SHA-256 of the request body, read in blocks as a real app would."""
    digest, size = hashlib.sha256(), 0
    stream = environ["wsgi.input"]
    while block := stream.read(BLOCK):
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


def _text(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _upload(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    size, sha = _read_body(environ)
    expected = environ.get("HTTP_X_SHA256", "")
    if sha != expected:
        return _text(start_response, "422 Unprocessable Content", f"mismatch {size} {sha}")
    return _text(start_response, "200 OK", f"ok {size} {sha}")


def _download(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        size, seed = int(query["size"][0]), int(query["seed"][0])
    except (KeyError, ValueError):
        return _text(start_response, "400 Bad Request", "size and seed must be integers")
    if not (0 <= size <= MAX_DOWNLOAD and 0 <= seed < SEEDS):
        return _text(start_response, "400 Bad Request", "size or seed out of range")
    headers = [("Content-Type", "application/octet-stream")]
    if query.get("stream") != ["1"]:
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return download_blocks(size, seed)


def _slow(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"started\n"
    size, _ = _read_body(environ)
    yield f"done {size}\n".encode()


def _echo(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    size, sha = _read_body(environ)
    start_response(
        "200 OK",
        [
            ("Content-Length", "0"),
            ("X-Method", environ["REQUEST_METHOD"]),
            ("X-Body-Length", str(size)),
            ("X-Body-Sha256", sha),
        ],
    )
    return []


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The soak app: see the module docstring for its routes."""
    path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
    if path == "/small" and method == "GET":
        nonce = parse_qs(environ.get("QUERY_STRING", "")).get("n", [""])[0]
        return _text(start_response, "200 OK", f"small {nonce}")
    if path == "/upload" and method == "POST":
        return _upload(environ, start_response)
    if path == "/download" and method == "GET":
        return _download(environ, start_response)
    if path == "/slow" and method == "POST":
        return _slow(environ, start_response)
    return _echo(environ, start_response)
