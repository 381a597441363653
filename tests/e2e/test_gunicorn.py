"""microwsgi apps under the real gunicorn with deploy/gunicorn.conf.py: its sync and gthread
workers and microwsgi's own worker class (microwsgi.workers.Worker)."""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import DEPLOY, EXAMPLES, REPO, Gunicorn, Response, fetch, wait_until
from tools import require_extra

pytestmark = pytest.mark.e2e
require_extra("gunicorn.app.wsgiapp")  # every test here runs it

StartGunicorn = Callable[..., Gunicorn]
THREADED = [
    pytest.param({"worker_class": "gthread", "threads": 2}, id="gthread"),
    pytest.param({"worker_class": "microwsgi.workers.Worker", "threads": 2}, id="microwsgi"),
]
WORKERS = [pytest.param({"worker_class": "sync"}, id="sync"), *THREADED]
CPUS = multiprocessing.cpu_count()  # what the shipped config counts


def test_shipped_config_passes_check_config() -> None:
    require_extra("pydantic")  # --check-config loads examples/todos.py
    command = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")]
    command += ["--check-config", "--chdir", str(EXAMPLES), "todos:server"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "worker_class", "threads", "workers"),
    [
        ("", "sync", 1, CPUS * 2 + 1),
        ("gthread", "gthread", 4, CPUS * 2 + 1),
        ("microwsgi.workers.Worker", "microwsgi.workers.Worker", 8, CPUS),
    ],
    ids=["default", "gthread", "microwsgi"],
)
def test_one_variable_chooses_the_shipped_configs_worker_class(
    variable: str, worker_class: str, threads: int, workers: int
) -> None:
    command = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")]
    command += ["--print-config", "--chdir", str(EXAMPLES), "todos:server"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MICROWSGI_WORKER_CLASS": variable}
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    settings = dict(re.findall(r"^(\w+) += (.*)$", result.stdout, re.M))
    assert settings["worker_class"] == worker_class
    assert (int(settings["threads"]), int(settings["workers"])) == (threads, workers)


@pytest.mark.parametrize("options", WORKERS)
def test_serves_the_examples(gunicorn: StartGunicorn, options: dict[str, Any]) -> None:
    hello = gunicorn("hello:server", chdir=EXAMPLES, **options)
    assert fetch(hello.port, "/hello/ada").json() == {"message": "Hello, ada!"}

    todos = gunicorn("todos:server", chdir=EXAMPLES, **options)
    created = fetch(
        todos.port,
        "/todos",
        method="POST",
        body=b'{"title": "deploy"}',
        headers={"Content-Type": "application/json"},
    )
    assert created.status == 201
    todo = created.json()
    assert fetch(todos.port, f"/todos/{todo['id']}").json() == todo
    assert fetch(todos.port, "/todos/999").status == 404


@pytest.mark.parametrize("options", THREADED)
def test_threaded_workers_keep_the_connection_alive(
    gunicorn: StartGunicorn, options: dict[str, Any]
) -> None:
    app = gunicorn("backend_app:server", **options)
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        answers = [fetch(app.port, "/id", conn=conn) for _ in range(5)]
    finally:
        conn.close()
    assert [a.status for a in answers] == [200] * 5
    assert all(a.headers.get("Connection", "").lower() != "close" for a in answers)
    # The app saw every request come from one client port: one TCP connection carried them all.
    assert len({a.json()["remote_port"] for a in answers}) == 1


def test_sync_worker_closes_after_each_response(gunicorn: StartGunicorn) -> None:
    app = gunicorn("backend_app:server", worker_class="sync")
    assert fetch(app.port, "/id").headers["Connection"].lower() == "close"


@pytest.mark.parametrize("options", WORKERS)
def test_raising_handler_gives_500_and_worker_keeps_serving(
    gunicorn: StartGunicorn, options: dict[str, Any]
) -> None:
    app = gunicorn("backend_app:server", **options)
    pid = fetch(app.port, "/id").json()["pid"]

    failed = fetch(app.port, "/boom")
    assert failed.status == 500
    assert b"a bug in a handler" not in failed.body
    assert b"Traceback" not in failed.body

    after = fetch(app.port, "/id")
    assert after.status == 200
    assert after.json()["pid"] == pid  # the same worker, not a replacement
    assert "RuntimeError: a bug in a handler" in app.log()


@pytest.mark.parametrize("options", WORKERS)
def test_a_failing_handler_is_in_the_error_log_once(
    gunicorn: StartGunicorn, options: dict[str, Any]
) -> None:
    app = gunicorn("backend_app:server", **options)
    assert fetch(app.port, "/boom").status == 500
    app.stop()
    log, stderr = app.log(), app.stderr_log.read_text()
    assert log.count("Traceback (most recent call last)") == 1, log
    assert log.count("RuntimeError: a bug in a handler") == 1, log
    assert "boom (GET /boom) while handling GET /boom" in log
    assert "Traceback" not in stderr, stderr  # not also on stderr (the shipped errorlog)


@pytest.mark.parametrize("options", WORKERS)
def test_sigterm_finishes_the_request_in_flight(
    gunicorn: StartGunicorn, tmp_path: Path, options: dict[str, Any]
) -> None:
    app = gunicorn("backend_app:server", **options)
    marker = tmp_path / "in-flight"
    result: list[Response | BaseException] = []

    def slow_request() -> None:
        try:
            result.append(fetch(app.port, f"/slow?seconds=1.5&marker={marker}"))
        except BaseException as exc:  # handed to the test thread, which reports it
            result.append(exc)

    client = threading.Thread(target=slow_request)
    client.start()
    try:
        wait_until(marker.exists, 10, "the slow request to reach the handler")
        assert app.proc is not None
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(15) == 0
    finally:
        client.join(15)
    assert len(result) == 1
    answer = result[0]
    assert isinstance(answer, Response), answer
    assert (answer.status, answer.body) == (200, b"finished")
    assert "Handling signal: term" in app.log()


# What a loaded machine does now and then: a worker slow between its fork and the moment it
# installs its own signal handlers (gunicorn's init_process). Here post_fork, which runs in that
# gap, holds a worker booted while the file `hold` exists, until the stop signal is pending in it
# (held back, as the shipped hooks do) or the test removes the file. The config is the shipped
# one with only that added.
SLOW_BOOT_CONFIG = """\
import os, signal, time
exec(compile(open({shipped!r}).read(), {shipped!r}, "exec"))

def post_fork(server, worker):
    deadline = time.monotonic() + 20
    while os.path.exists({hold!r}) and time.monotonic() < deadline:
        if signal.SIGTERM in signal.sigpending():
            break
        time.sleep(0.01)
    server.log.info("post_fork done")
"""


def slow_boot_config(tmp_path: Path) -> tuple[Path, Path]:
    """The config file, and the file whose presence holds a booting worker."""
    config, hold = tmp_path / "slow_boot.conf.py", tmp_path / "hold"
    config.write_text(
        SLOW_BOOT_CONFIG.format(shipped=str(DEPLOY / "gunicorn.conf.py"), hold=str(hold))
    )
    return config, hold


def stop_while_a_worker_boots(app: Gunicorn, hold: Path, booted: int) -> str:
    """SIGTERM once the `booted`-th worker is held in the gap; its log once gunicorn exited 0."""
    app.wait_for_log("Booting worker", count=booted)
    app.send_signal(signal.SIGTERM)
    app.wait_for_log("Handling signal: term")
    # The held worker sees the signal pending and goes on; a lost one never does, and the
    # caller's assertions say so.
    with contextlib.suppress(pytest.fail.Exception):
        app.wait_for_log("post_fork done", count=booted, timeout=5)
    hold.unlink()
    assert app.proc is not None
    assert app.proc.wait(15) == 0
    return app.log()


@pytest.mark.parametrize("options", WORKERS)
def test_sigterm_while_a_worker_boots_stops_it_at_once(
    gunicorn: StartGunicorn, tmp_path: Path, options: dict[str, Any]
) -> None:
    config, hold = slow_boot_config(tmp_path)
    hold.touch()
    app = gunicorn("backend_app:server", config=config, **options)
    log = stop_while_a_worker_boots(app, hold, booted=1)
    # The premise: the master had the signal, and relayed it, while the worker was in the gap.
    assert 0 <= log.find("Handling signal: term") < log.find("post_fork done"), log
    # The worker got it once its handlers existed and left by itself; a lost signal would have
    # left it serving until graceful_timeout (10 s here), when the master kills it unlogged.
    (pid,) = re.findall(r"Booting worker with pid: (\d+)", log)
    assert f"Worker exiting (pid: {pid})" in log, log


def test_after_a_reload_sigterm_while_a_worker_boots_still_stops_it_at_once(
    gunicorn: StartGunicorn, tmp_path: Path
) -> None:
    # SIGHUP reads the config again (on_reload, not on_starting) and boots new workers: the
    # signal must still wait for each new worker's handlers.
    config, hold = slow_boot_config(tmp_path)
    app = gunicorn("backend_app:server", config=config, worker_class="sync")
    app.wait_for_log("post_fork done")
    hold.touch()
    app.send_signal(signal.SIGHUP)
    log = stop_while_a_worker_boots(app, hold, booted=2)
    reloaded = log.index("Handling signal: hup")
    assert 0 <= log.find("Handling signal: term", reloaded) < log.rfind("post_fork done"), log
    for pid in re.findall(r"Booting worker with pid: (\d+)", log):
        assert f"Worker exiting (pid: {pid})" in log, log
