"""rate_limit(...): 429 with Retry-After in the JSON error shape, per client, several limits,
the refusals at construction, and (with a real redis-server) one budget shared between
processes and a Redis outage served with one warning."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning
from gunicorn_process import accepts_connections, free_port, stop_process, wait_until
from tools import import_error_without, require_extra, require_program

from microwsgi import Server, rate_limit

require_extra("limits")

# The module, not the function the package exports under the same name.
rate_limit_module = importlib.import_module("microwsgi.middleware.rate_limit")


def limited(limit: str, **options: Any) -> webtest.TestApp:
    server = Server()

    @server.get("/limited", rate_limit(limit, **options))
    def limited_route(request: dict[str, Any]) -> Any:
        return {"ok": True}

    @server.get("/free")
    def free(request: dict[str, Any]) -> Any:
        return {"ok": True}

    return webtest.TestApp(server)


def test_over_the_limit_is_429_with_retry_after() -> None:
    app = limited("3/minute")
    for _ in range(3):
        app.get("/limited", extra_environ={"REMOTE_ADDR": "192.0.2.1"})
    res = app.get("/limited", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=429)
    assert res.json == {
        "status": 429,
        "error": "Too Many Requests",
        "message": f"rate limit of 3/minute exceeded; retry in {res.headers['Retry-After']} s",
    }
    assert 1 <= int(res.headers["Retry-After"]) <= 60
    # Another client has its own budget; other routes are not limited.
    app.get("/limited", extra_environ={"REMOTE_ADDR": "192.0.2.2"})
    app.get("/free", extra_environ={"REMOTE_ADDR": "192.0.2.1"})


def test_the_key_function_names_the_client() -> None:
    app = limited("2/minute", key=lambda request: request["headers"].get("X-Api-Key"))
    for _ in range(2):
        app.get("/limited", headers={"X-Api-Key": "k1"})
    app.get("/limited", headers={"X-Api-Key": "k1"}, status=429)
    app.get("/limited", headers={"X-Api-Key": "k2"})


def test_several_limits_the_tightest_answers() -> None:
    app = limited("2/second;3/hour")
    app.get("/limited")
    app.get("/limited")
    assert app.get("/limited", status=429).headers["Retry-After"] == "1"


def test_behind_a_proxy_the_forwarded_client_is_the_key() -> None:
    server = Server(trusted_proxies=1)
    server.before_all(rate_limit("1/minute"))

    @server.get("/x")
    def x(request: dict[str, Any]) -> Any:
        return "x"

    app = webtest.TestApp(server)
    app.get("/x", headers={"X-Forwarded-For": "198.51.100.7"})
    app.get("/x", headers={"X-Forwarded-For": "198.51.100.7"}, status=429)
    app.get("/x", headers={"X-Forwarded-For": "198.51.100.8"})


@pytest.mark.parametrize("limit", ["100 per fortnight", "lots", ""])
def test_a_bad_limit_is_refused(limit: str) -> None:
    with pytest.raises(ValueError, match="not a limit in the limits library's notation"):
        rate_limit(limit)


def test_without_the_extra_the_error_names_it() -> None:
    message = import_error_without(
        "limits", "rate_limit('1/second')", setup="from microwsgi import rate_limit"
    )
    assert "pip install 'microwsgi[ratelimit]'" in message


# -- with a real Redis -------------------------------------------------------------------------


class Redis:
    """A redis-server of the test's own on 127.0.0.1, no persistence; stopped at the end."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: accepts_connections(self.port), 10, "redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    require_extra("redis")  # the client the limits library's redis:// storage uses
    server = Redis(require_program("redis-server", "rate limits shared in Redis"), tmp_path)
    server.start()
    yield server
    server.stop()


SHARED_APP = """
import sys
from werkzeug.test import Client
from microwsgi import Server, rate_limit
server = Server()
server.before_all(rate_limit('5/minute', storage=sys.argv[1]))
server.get('/x')(lambda request: 'x')
print(' '.join(str(Client(server).get('/x').status_code) for _ in range(int(sys.argv[2]))))
"""


@pytest.mark.e2e
def test_one_budget_shared_between_processes(redis: Redis) -> None:
    """Two processes, each with its own Server and connection, spend one budget of 5."""
    statuses = []
    for count in (3, 4):
        done = subprocess.run([sys.executable, "-c", SHARED_APP, redis.url, str(count)],
                              capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
        statuses += done.stdout.split()
    assert statuses == ["200"] * 5 + ["429"] * 2


@pytest.mark.e2e
def test_a_redis_outage_serves_requests_and_warns_once(
    redis: Redis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit_module, "RETRY_STORAGE_AFTER", 0.0)
    app = limited("2/minute", storage=redis.url)
    app.get("/limited")
    app.get("/limited")
    app.get("/limited", status=429)
    with caplog.at_level(logging.INFO, logger="microwsgi"):
        redis.stop()
        for _ in range(5):
            app.get("/limited", status=200)  # served, unlimited, while Redis is down
        redis.start()  # a fresh Redis: the counts are gone with the old one
        app.get("/limited", status=200)
        app.get("/limited", status=200)
        app.get("/limited", status=429)
    messages = [
        (r.levelno, r.getMessage()) for r in caplog.records if "rate_limit" in r.getMessage()
    ]
    assert len(messages) == 2, messages
    assert messages[0][0] == logging.WARNING and "is unreachable" in messages[0][1]
    assert messages[1] == (logging.INFO, f"rate_limit: storage {redis.url} is back")
