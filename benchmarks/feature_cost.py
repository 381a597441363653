"""What a feature costs a request, in instructions counted by callgrind.

``python -m benchmarks.feature_cost`` runs this module under ``valgrind --tool=callgrind`` once
per (mode, N): a `Server` whose route ``GET /users/:id`` answers a small JSON dict, called
directly ``server(environ, start_response)`` N times for ``GET /users/7``, body consumed and
``close()`` called, after 200 calls that compile the routes (and make the metrics' label
children). The count per request is the difference between N = 2,000 and N = 6,000, divided
by 4,000: start-up and the warm calls cancel out. Instruction counts do not depend on what else
the machine runs, unlike times. The modes (``--modes a,b``; all by default):

- ``bare``: the route alone;
- ``metrics``: with ``server.metrics()``;
- ``request_id``: under ``request_id()`` (a fixed ID, so that the UUID is not counted);
- ``cors``: under ``cors(origins=[...])``, for a request from an allowed origin;
- ``sessions``: under ``sessions(...)``, the handler reading the session of a request that
  has no cookie yet (the answer says ``Vary: Cookie``);
- ``make_response``: under a middleware of one's own that adds a header through
  ``make_response``, as docs/responses.md shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microwsgi import Server, make_response
from microwsgi.chains import Handler, Middleware
from microwsgi.middleware import cors, request_id, sessions

ROOT = Path(__file__).resolve().parents[1]
MODES = ("bare", "metrics", "request_id", "cors", "sessions", "make_response")
COUNTS = (2_000, 6_000)
ORIGIN = "https://app.example"
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/users/7",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
    "HTTP_ORIGIN": ORIGIN,
}


def powered_by(next: Handler) -> Handler:
    def handler(request: dict[str, Any]) -> Any:
        response = make_response(next(request), request)
        response.headers["X-Powered-By"] = "microwsgi"
        return response

    return handler


def build(mode: str) -> Server:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    server = Server()
    middleware: dict[str, Middleware] = {
        "request_id": request_id(generator=lambda: "fixed-id"),
        "cors": cors(origins=[ORIGIN]),
        "sessions": sessions("a secret of thirty-two characters"),
        "make_response": powered_by,
    }

    @server.get("/hello")
    def hello(request: dict[str, Any]) -> Any:
        return {"message": "Hello, World!"}

    if mode == "sessions":

        @server.get("/users/:id", middleware.get(mode))
        def user(request: dict[str, Any]) -> Any:
            return {"id": request["params"]["id"], "user": request["session"].get("user")}

    else:

        @server.get("/users/:id", middleware.get(mode))
        def user(request: dict[str, Any]) -> Any:
            return {"id": request["params"]["id"]}

    if mode == "metrics":
        server.metrics()
    return server


def call(server: Server, n: int) -> None:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        return write

    def write(data: bytes) -> None:
        return None

    for _ in range(n):
        body = server(dict(ENVIRON), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def count(mode: str, n: int, folder: str) -> int:
    """The instructions of one whole run of `n` calls (start-up included)."""
    out = f"{folder}/{mode}-{n}.out"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, "-m", "benchmarks.feature_cost", "--child", mode, str(n)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        cwd=ROOT,  # where `benchmarks` is importable
    )  # fmt: skip
    found = re.search(r"^summary: (\d+)", Path(out).read_text(), re.MULTILINE)
    assert found is not None, f"no summary in {out}"
    return int(found.group(1))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        server = build(argv[1])
        call(server, 200)
        call(server, int(argv[2]))
        return
    modes = argv[1].split(",") if argv[:1] == ["--modes"] else list(MODES)
    low, high = COUNTS
    print("instructions per request, GET /users/7 called directly:")
    with tempfile.TemporaryDirectory() as folder:
        bare = None
        for mode in modes:
            build(mode)  # an unknown mode fails here, before callgrind runs
            per_request = (count(mode, high, folder) - count(mode, low, folder)) / (high - low)
            if mode == "bare":
                bare = per_request
            extra = (
                ""
                if bare is None or mode == "bare"
                else (f" (+{per_request - bare:,.0f}, {per_request / bare:.2f}x)")
            )
            print(f"  {mode:<14} {per_request:>9,.0f}{extra}")


if __name__ == "__main__":
    main(sys.argv[1:])
