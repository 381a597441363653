"""The several-hosts deployment, proven on this machine (tests/e2e/hosts.py builds the network).

Six network namespaces on one bridge, in 198.51.100.0/24: a client; a front host running nginx
with the shipped deploy/nginx.conf (its upstream rendered to the two app hosts); two app hosts
each running gunicorn with the shipped deploy/gunicorn.conf.py and microwsgi's worker, two
workers each, serving tests/e2e/ops_app.py; a data host running Redis (the shared rate limit)
and Prometheus (scraping both app hosts every second). Under a bounded steady load through
nginx it shows: a signed session written on one host read on the other; one rate limit shared
by both; an app host killed mid-load without a failed request (nginx retries the other); a
rolling restart of each host in turn without a failed request; Prometheus's query API
returning the requests sent. Every process is killed and every namespace deleted at the end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from e2e_support import DEPLOY, HERE, Nginx, render_site
from gunicorn_process import wait_until
from hosts import WAIT, Hosts, require_namespaces
from tools import require_extra, require_program

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]  # the whole scenario: under 3 minutes

APP_PORT = 8000
LIMIT = 10  # requests a minute per client, shared by both app hosts
COUNTED = 50  # requests to /counted at the end, for Prometheus to count
SECRET = "several hosts share this session secret, 32+ bytes"

LOADER = """
import http.client, json, os, sys, threading, time
address, stop, progress, clients = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
state = {"ok": 0, "failed": [], "hosts": {}}
lock = threading.Lock()

def client():
    conn = None
    while not os.path.exists(stop):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(address, 80, timeout=20)
            conn.request("GET", "/pid")
            answer = conn.getresponse()
            body = answer.read()
            with lock:
                if answer.status == 200:
                    host = json.loads(body)["host"]
                    state["ok"] += 1
                    state["hosts"][host] = state["hosts"].get(host, 0) + 1
                else:
                    state["failed"].append(f"{answer.status} {body[:200]!r}")
        except Exception as exc:
            with lock:
                state["failed"].append(repr(exc))
            if conn is not None:
                conn.close()
            conn = None
        time.sleep(0.01)  # a steady load, bounded: at most 100 requests a second per client

def report():
    with lock:
        text = json.dumps(state)
    with open(progress + ".new", "w") as out:
        out.write(text)
    os.replace(progress + ".new", progress)

threads = [threading.Thread(target=client) for _ in range(clients)]
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    report()
    time.sleep(0.1)
report()
"""

REQUESTS = """
import http.client, json, sys
address, port, method, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
count, headers = int(sys.argv[5]), json.loads(sys.argv[6])
out = []
for _ in range(count):
    conn = http.client.HTTPConnection(address, port, timeout=10)
    conn.request(method, path, headers=headers)
    answer = conn.getresponse()
    out.append({"status": answer.status, "headers": dict(answer.getheaders()),
                "body": answer.read().decode()})
    conn.close()
print(json.dumps(out))
"""


class Deployment:
    """The hosts, and what runs on them."""

    def __init__(self, hosts: Hosts, root: Path) -> None:
        self.hosts = hosts
        self.root = root
        self.gunicorns: dict[str, subprocess.Popen[bytes]] = {}
        self.loader: subprocess.Popen[bytes] | None = None

    def request(
        self,
        host: str,
        to: str,
        method: str,
        path: str,
        count: int = 1,
        headers: dict[str, str] | None = None,
        port: int = 80,
    ) -> list[dict[str, Any]]:
        """`count` requests from `host` to `to` (a host's name), each on a new connection."""
        address = self.hosts.addresses[to]
        text = self.hosts.python(host, REQUESTS, address, str(port), method, path, str(count),
                                 json.dumps(headers or {}))  # fmt: skip
        return list(json.loads(text))

    def start_app(self, host: str) -> None:
        address = self.hosts.addresses[host]
        log = self.root / f"{host}.log"
        self.gunicorns[host] = self.hosts.start(
            host,
            [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"),
             "--worker-class", "microwsgi.workers.Worker", "--workers", "2", "--threads", "4",
             "--bind", f"{address}:{APP_PORT}", "--graceful-timeout", "10",
             "--chdir", str(HERE), "ops_app:server"],
            log,
            env={
                "MICROWSGI_HOST_NAME": host,
                "MICROWSGI_FORWARDED_ALLOW_IPS": self.hosts.addresses["front"],
                "MICROWSGI_ACCESS_LOG": str(self.root / f"{host}.access.log"),
                "RATE_LIMIT": f"{LIMIT}/minute",
                "RATE_LIMIT_STORAGE": f"redis://{self.hosts.addresses['data']}:6379",
                "SESSION_SECRET": SECRET,
                "TMPDIR": str(self.root),
            },
        )  # fmt: skip
        self.hosts.wait_listening("client", address, APP_PORT)

    def stop_app(self, host: str, sig: int) -> None:
        """SIGKILL: the master and its workers at once, as a crash; SIGTERM: gunicorn's
        graceful stop (the master stops its workers, which finish what is in flight)."""
        proc = self.gunicorns.pop(host)
        if sig == signal.SIGKILL:
            self.hosts.signal_group(proc, sig)
        else:
            proc.send_signal(sig)
        self.hosts.wait_exit(proc)

    def progress(self) -> dict[str, Any]:
        path = self.root / "progress.json"
        return dict(json.loads(path.read_text())) if path.exists() else {"ok": 0, "hosts": {}}

    def wait_for_load(self, more: int) -> None:
        """Until the load has had `more` answers since now."""
        start = self.progress()["ok"]
        wait_until(lambda: self.progress()["ok"] >= start + more, WAIT, f"{more} more answers")

    def wait_served_by(self, host: str, more: int = 20) -> None:
        """Until nginx sends the load to `host` again (after its fail_timeout)."""
        start = self.progress()["hosts"].get(host, 0)
        wait_until(lambda: self.progress()["hosts"].get(host, 0) >= start + more, WAIT,
                   f"nginx to send requests to {host} again")  # fmt: skip


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    # The app hosts run tests/e2e/ops_app.py under gunicorn: metrics, rate limits in Redis.
    for package in ("gunicorn.app.wsgiapp", "prometheus_client", "limits", "redis"):
        require_extra(package)
    ip = require_namespaces()
    nginx_program = require_program("nginx", "the front host's load balancer")
    redis_program = require_program("redis-server", "the shared rate limit's storage")
    prometheus_program = require_program("prometheus", "scraping the app hosts")
    hosts = Hosts(ip)
    try:
        hosts.add_switch()
        for host, number in (("front", 1), ("app1", 11), ("app2", 12), ("data", 20),
                             ("client", 30)):  # fmt: skip
            hosts.add_host(host, number)
        deployment = Deployment(hosts, tmp_path)
        data = hosts.addresses["data"]
        hosts.start("data", [redis_program, "--bind", data, "--port", "6379", "--save", "",
                             "--appendonly", "no", "--protected-mode", "no",
                             "--dir", str(tmp_path)], tmp_path / "redis.log")  # fmt: skip
        targets = [f"{hosts.addresses[h]}:{APP_PORT}" for h in ("app1", "app2")]
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: microwsgi\n    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
        )
        hosts.start("data", [prometheus_program, f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address={data}:9090"],
                    tmp_path / "prometheus.log")  # fmt: skip
        hosts.wait_listening("client", data, 6379)
        for host in ("app1", "app2"):
            deployment.start_app(host)
        front = tmp_path / "nginx"
        front.mkdir()
        (front / "static").mkdir()
        site = render_site((DEPLOY / "nginx.conf").read_text(), upstreams=targets,
                           listen=[f"{hosts.addresses['front']}:80"],
                           static_dir=front / "static")  # fmt: skip
        nginx = Nginx(front, site, port=80)
        nginx.write_config()
        hosts.start("front", [nginx_program, "-p", str(front), "-c", str(nginx.conf),
                              "-e", str(nginx.error_log), "-g", "daemon off;"],
                    tmp_path / "nginx.log")  # fmt: skip
        hosts.wait_listening("client", hosts.addresses["front"], 80)
        hosts.wait_listening("client", data, 9090)
        yield deployment
    finally:
        hosts.close()
        assert hosts.left_behind() == []


def test_two_app_hosts_behind_nginx_with_redis_and_prometheus(deployment: Deployment) -> None:
    started = time.monotonic()
    request = deployment.request

    # A signed session written on one host is read on the other: only the secret is shared.
    (written,) = request("client", "app1", "POST", "/session?user=ada", port=APP_PORT)
    assert written["status"] == 200 and json.loads(written["body"])["host"] == "app1"
    cookie = written["headers"]["Set-Cookie"].split(";")[0]
    (read,) = request("client", "app2", "GET", "/session", headers={"Cookie": cookie},
                      port=APP_PORT)  # fmt: skip
    assert json.loads(read["body"]) == {"session": {"user": "ada"}, "host": "app2"}

    # One rate limit across both hosts: nginx spreads the requests, Redis keeps one budget.
    answers = request("client", "front", "GET", "/limited", count=LIMIT + 4)
    statuses = [answer["status"] for answer in answers]
    assert statuses == [200] * LIMIT + [429] * 4, statuses
    served_by = {json.loads(a["body"])["host"] for a in answers if a["status"] == 200}
    assert served_by == {"app1", "app2"}
    assert all(int(a["headers"]["Retry-After"]) >= 1 for a in answers if a["status"] == 429)

    # Steady load through nginx from here on.
    root = deployment.root
    loader = deployment.hosts.start(
        "client",
        [sys.executable, "-c", LOADER, deployment.hosts.addresses["front"], str(root / "stop"),
         str(root / "progress.json"), "3"],
        root / "loader.log",
    )  # fmt: skip
    try:
        deployment.wait_for_load(100)
        assert set(deployment.progress()["hosts"]) == {"app1", "app2"}

        # An app host killed mid-load: its requests in flight are retried on the other.
        deployment.stop_app("app1", signal.SIGKILL)
        deployment.wait_for_load(150)
        deployment.start_app("app1")
        deployment.wait_served_by("app1")

        # A rolling restart, one host at a time: graceful stop, start, back in rotation.
        for host in ("app1", "app2"):
            deployment.stop_app(host, signal.SIGTERM)
            deployment.wait_for_load(100)
            deployment.start_app(host)
            deployment.wait_served_by(host)
    finally:
        (root / "stop").touch()
        loader.wait(WAIT)
    load = deployment.progress()
    assert load["failed"] == [], load["failed"][:10]
    assert load["ok"] >= 500 and set(load["hosts"]) == {"app1", "app2"}

    # Prometheus, scraping both hosts (each adding up its two workers), counts what was sent.
    answers = request("client", "front", "GET", "/counted", count=COUNTED)
    assert {answer["status"] for answer in answers} == {200}
    query = 'sum(microwsgi_requests_total{route="counted",status="200"})'

    def prometheus_count() -> float:
        (answer,) = request("client", "data", "GET",
                            f"/api/v1/query?query={quote(query)}", port=9090)  # fmt: skip
        result = json.loads(answer["body"])["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    wait_until(lambda: prometheus_count() == COUNTED, WAIT, f"Prometheus to count {COUNTED}")
    print(f"several hosts: {load['ok']} requests under load ({load['hosts']}), 0 failed, "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
