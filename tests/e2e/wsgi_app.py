"""A plain WSGI application, no microwsgi in it, for the worker tests: each path shows one thing.

/environ   the environ's text values (and the scheme, multiprocess, multithread) as JSON
/pid       the worker's pid and the client's port (which TCP connection carried the request)
/slow      ?marker=FILE&seconds=S: touches FILE (the request is in flight), sleeps, answers
/hold      ?marker=FILE&release=FILE: touches FILE, waits until RELEASE exists (bounded), then
           answers with the worker's pid
/boom      raises
/echo      answers with the request body
/errors    writes a line to wsgi.errors
/file      answers this file through wsgi.file_wrapper
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

HOLD_LIMIT = 60.0  # a held request gives up after this long, whatever the test does


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = {key: values[0] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    content_type = "text/plain"
    if path == "/environ":
        seen = {key: value for key, value in environ.items() if isinstance(value, str)}
        for key in ("wsgi.url_scheme", "wsgi.multiprocess", "wsgi.multithread"):
            seen[key] = environ[key]
        body, content_type = json.dumps(seen).encode(), "application/json"
    elif path == "/pid":
        body = f"{os.getpid()} {environ.get('REMOTE_PORT', '')}".encode()
    elif path == "/slow":
        Path(query["marker"]).touch()
        time.sleep(float(query.get("seconds", "1")))
        body = b"finished"
    elif path == "/hold":
        Path(query["marker"]).touch()
        release, deadline = Path(query["release"]), time.monotonic() + HOLD_LIMIT
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        body = f"{os.getpid()} released".encode()
    elif path == "/boom":
        raise RuntimeError("a bug in a plain WSGI app")
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/errors":
        environ["wsgi.errors"].write("a line for wsgi.errors\n")
        environ["wsgi.errors"].flush()
        body = b"written"
    elif path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"))  # closed by the wrapper
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", content_type)])
    return [body]
