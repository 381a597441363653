"""The app the operations tests deploy (metrics under gunicorn, the several-hosts scenario).

/pid       the worker's pid, and the host's name from MICROWSGI_HOST_NAME
/metrics   server.metrics()
/healthz   server.health()
"""

from __future__ import annotations

import os
from typing import Any

from microwsgi import Server

HOST = os.environ.get("MICROWSGI_HOST_NAME", "app")

server = Server(trusted_proxies=1)
server.metrics()
server.health()


@server.get("/pid")
def pid(request: dict[str, Any]) -> Any:
    return {"pid": os.getpid(), "host": HOST}
