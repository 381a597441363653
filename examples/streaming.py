"""Streamed responses and file downloads.

A handler that returns a generator has its body sent piece by piece as it is produced, without
Content-Length and without holding the whole body in memory; ``send_file`` serves a file from disk
with its type, ETag, conditional GET and Range support.

Run it:
    python examples/streaming.py                  # built-in server, localhost:8080 (or $HOST:$PORT)
    gunicorn --chdir examples streaming:server

Try it:
    curl -N 'localhost:8080/count?n=5&delay=0.5'  # lines arrive one by one
    curl -OJ localhost:8080/report.csv            # a CSV made while it downloads
    curl -OJ localhost:8080/source                # this file, from disk
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from microwsgi import Server, send_file

MAX_COUNT = 10_000
MAX_DELAY = 1.0  # seconds between lines, at most: a demo, not a way to hold a worker

server = Server()


def _number(request: dict[str, Any], name: str, default: float, top: float) -> float:
    try:
        value = float(request["query"].get(name, default))
    except ValueError:
        return default
    return min(max(value, 0), top)


@server.register("GET /count")
def count(request: dict[str, Any]) -> Any:
    n = int(_number(request, "n", 10, MAX_COUNT))
    delay = _number(request, "delay", 0, MAX_DELAY)

    def lines() -> Iterator[str]:
        for i in range(1, n + 1):
            yield f"{i}\n"
            if delay and i < n:
                time.sleep(delay)

    # X-Accel-Buffering tells nginx (deploy/nginx.conf buffers responses) to pass each line on
    # as soon as it arrives.
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-Accel-Buffering": "no"}
    return lines(), 200, headers


@server.register("GET /report.csv")
def report(request: dict[str, Any]) -> Any:
    rows = int(_number(request, "rows", 100, MAX_COUNT))

    def produce() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["n", "square", "cube"])
        for n in range(1, rows + 1):
            writer.writerow([n, n * n, n * n * n])
            # Send what one row wrote, then reuse the buffer: memory stays flat however many rows.
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="report.csv"',
    }
    return produce(), 200, headers


@server.register("GET /source")
def source(request: dict[str, Any]) -> Any:
    return send_file(
        Path(__file__), mimetype="text/x-python", download_name="streaming.py", as_attachment=True
    )


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
