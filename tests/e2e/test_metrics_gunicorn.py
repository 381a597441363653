"""server.metrics() under gunicorn with two workers and the shipped config: one scrape counts
every worker's requests, dead workers are marked, the files live under $TMPDIR and go away."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tools
from e2e_support import DEPLOY, HERE, REPO, Gunicorn, fetch, wait_until

pytestmark = pytest.mark.e2e
parser = tools.require_extra("prometheus_client.parser")
tools.require_extra("limits")  # ops_app, the app served, has a rate-limited route
tools.require_extra("gunicorn.app.wsgiapp")


def counted(port: int, route: str) -> float:
    """microwsgi_requests_total for GET `route` answered 200, summed, from one scrape."""
    text = fetch(port, "/metrics").body.decode()
    return sum(
        sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "microwsgi_requests_total"
        and sample.labels == {"verb": "GET", "route": route, "status": "200"}
    )


def test_one_scrape_counts_both_workers(gunicorn: Callable[..., Gunicorn], tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    server = gunicorn(
        "ops_app:server",
        chdir=HERE,
        worker_class="microwsgi.workers.Worker",
        workers=2,
        threads=2,
        env={"TMPDIR": str(tmpdir)},
        options=["--worker-connections=1"],
    )
    (metrics_dir,) = tmpdir.glob("microwsgi-metrics-*")
    # With one connection each, a worker holding a kept-alive connection leaves the next
    # connection to the other: 3 requests on one worker, 5 on the other.
    served: dict[int, int] = {}
    first, second = (http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                     for _ in range(2))  # fmt: skip
    try:
        for conn, count in ((first, 3), (second, 5)):
            for _ in range(count):
                pid = fetch(server.port, "/pid", conn=conn).json()["pid"]
                served[pid] = served.get(pid, 0) + 1
    finally:
        first.close()
        second.close()
    assert sorted(served.values()) == [3, 5] and set(served) == set(server.worker_pids())
    sent = 8
    # Whichever worker answers a scrape, it reports both workers' requests.
    for _ in range(6):
        assert counted(server.port, "pid") == sent

    # A worker killed is replaced; its counts stay in the total, its gauge file goes.
    victim = next(iter(served))
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2,
               10, "the killed worker to be replaced")  # fmt: skip
    wait_until(lambda: not list(metrics_dir.glob(f"gauge_livesum_{victim}.db")), 10,
               "the dead worker's gauge file to be removed")  # fmt: skip
    assert counted(server.port, "pid") == sent

    server.stop()
    assert not metrics_dir.exists()


def test_checking_the_config_leaves_no_directory_behind(tmp_path: Path) -> None:
    # gunicorn --check-config reads the config and exits: the directory it made goes with it.
    command = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py"),
               "--check-config", "--chdir", str(HERE), "ops_app:server"]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []
