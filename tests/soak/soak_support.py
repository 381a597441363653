"""What the soak tests share: the servers they run against, and the driver on `sys.path`.

(A module of its own rather than conftest.py, so that test modules can import it by a name no
other conftest.py shares.) The driver, `benchmarks/soak*.py`, lives beside the package so that
the benchmark run uses the very same code; it is imported from the repository root.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.soak_targets import RunningServer  # noqa: E402
from microwsgi.server import DevServer  # noqa: E402

# The servers the soak and the live fuzz run against: a name of `soak_targets.TARGETS`.
SOAK_TARGETS = ["microwsgi"]

StartServer = Callable[..., RunningServer]


@contextlib.contextmanager
def dev_server(app: Callable[..., Any], **options: Any) -> Iterator[DevServer]:
    """The dev server in this process (the embedding API) on a free 127.0.0.1 port."""
    server = DevServer(app, "127.0.0.1", 0, access_log=False, **options).start()
    try:
        yield server
    finally:
        server.shutdown()


def until_closed(port: int, request: bytes) -> bytes:
    """Send `request` on a new connection; all the server sends until it closes (10 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer
