"""What ``server.metrics()`` costs a request, in instructions counted by callgrind.

``python -m benchmarks.metrics_cost`` runs this module under ``valgrind --tool=callgrind`` once
per (mode, N): a `Server` with two routes, without (``bare``) and with ``server.metrics()``,
called directly ``server(environ, start_response)`` N times for ``GET /users/7`` (a route with
a parameter, answering a small JSON dict), body consumed and ``close()`` called, after 200 calls
that compile the routes and make the label children. The count per request is the difference
between N = 2,000 and N = 6,000, divided by 4,000: start-up and the warm calls cancel out.
Instruction counts do not depend on what else the machine runs, unlike times.
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

from microwsgi import Server

ROOT = Path(__file__).resolve().parents[1]
MODES = ("bare", "metrics")
COUNTS = (2_000, 6_000)
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/users/7",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
}


def build(mode: str) -> Server:
    server = Server()

    @server.get("/hello")
    def hello(request: dict[str, Any]) -> Any:
        return {"message": "Hello, World!"}

    @server.get("/users/:id")
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
         sys.executable, "-m", "benchmarks.metrics_cost", "--child", mode, str(n)],
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
    low, high = COUNTS
    per_request = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in MODES:
            per_request[mode] = (count(mode, high, folder) - count(mode, low, folder)) / (
                high - low
            )
    bare, measured = per_request["bare"], per_request["metrics"]
    print(
        f"instructions per request, GET /users/7 called directly: bare {bare:,.0f}, "
        f"with server.metrics() {measured:,.0f} (+{measured - bare:,.0f}, {measured / bare:.2f}x)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
