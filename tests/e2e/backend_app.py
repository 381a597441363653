"""The app the end-to-end tests run under gunicorn: each route exposes one behaviour to check.

BACKEND_ID names the instance (so a test behind nginx sees which one answered) and
TRUSTED_PROXIES is passed to Server(trusted_proxies=...). Every instance signs its session cookie
with the same SESSION_SECRET, as the processes of one site must.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from microwsgi import Server, sessions

server = Server(trusted_proxies=int(os.environ.get("TRUSTED_PROXIES", "0")))
session = sessions(os.environ.get("SESSION_SECRET", "the e2e tests' session secret, 32+ bytes"))


@server.register("GET /id")
def backend_id(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": os.environ.get("BACKEND_ID", ""),
        "pid": os.getpid(),
        # The peer's port tells the test which TCP connection carried the request.
        "remote_port": request["environ"].get("REMOTE_PORT"),
    }


@server.register("GET /boom")
def boom(request: dict[str, Any]) -> None:
    raise RuntimeError("a bug in a handler")


@server.register("GET /slow")
def slow(request: dict[str, Any]) -> str:
    # The marker file tells the test the request is in flight before it signals gunicorn.
    Path(request["query"]["marker"]).touch()
    time.sleep(min(float(request["query"].get("seconds", "1")), 5.0))
    return "finished"


@server.register("GET /whoami")
def whoami(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": os.environ.get("BACKEND_ID", ""),
        "remote_addr": request["remote_addr"],
        "scheme": request["scheme"],
        "host": request["host"],
        "url": request["url"],
        "x_forwarded_for": request["headers"].get("X-Forwarded-For"),
    }


@server.register("POST /session", session)
def write_session(request: dict[str, Any]) -> dict[str, Any]:
    request["session"]["written_by"] = os.environ.get("BACKEND_ID", "")
    return {"id": os.environ.get("BACKEND_ID", "")}


@server.register("GET /session", session)
def read_session(request: dict[str, Any]) -> dict[str, Any]:
    return {"id": os.environ.get("BACKEND_ID", ""), "session": dict(request["session"])}
