"""The app the operations tests deploy (metrics under gunicorn, the several-hosts scenario).

/pid            the worker's pid, and the host's name from MICROWSGI_HOST_NAME
/counted        the same, on a route of its own that only the end of a test calls
/session        GET: the session; POST ?user=NAME: writes it (sessions, SESSION_SECRET)
/limited        rate_limit(LIMIT, storage=RATE_LIMIT_STORAGE), keyed by the client's address
/metrics        server.metrics()
/healthz        server.health()
"""

from __future__ import annotations

import os
from typing import Any

from microwsgi import Server, rate_limit, sessions

HOST = os.environ.get("MICROWSGI_HOST_NAME", "app")
LIMIT = os.environ.get("RATE_LIMIT", "10/minute")
STORAGE = os.environ.get("RATE_LIMIT_STORAGE", "memory://")

# The one proxy in front (nginx) says who the client is: rate limits key on that address.
server = Server(trusted_proxies=1)
server.metrics()
server.health()
site = server.group(
    "", sessions(os.environ.get("SESSION_SECRET", "tests only: 32 bytes or more, so no warning"))
)


@server.get("/pid")
def pid(request: dict[str, Any]) -> Any:
    return {"pid": os.getpid(), "host": HOST}


@server.get("/counted")
def counted(request: dict[str, Any]) -> Any:
    return {"host": HOST}


@site.get("/session")
def read_session(request: dict[str, Any]) -> Any:
    return {"session": dict(request["session"]), "host": HOST}


@site.post("/session")
def write_session(request: dict[str, Any]) -> Any:
    request["session"]["user"] = request["query"]["user"]
    return {"host": HOST}


@server.get("/limited", rate_limit(LIMIT, storage=STORAGE))
def limited(request: dict[str, Any]) -> Any:
    return {"host": HOST}
