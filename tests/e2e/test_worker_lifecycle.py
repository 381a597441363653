"""microwsgi.workers.Worker's life under gunicorn's arbiter, with the settings and signals that
govern it: workers, threads, worker_connections, timeout (the heartbeat), graceful_timeout,
max_requests with its jitter, reload, SIGHUP, SIGUSR1, SIGTTIN/SIGTTOU, SIGQUIT.

Every wait is bounded and waits for an event (a file the app touches, a log line, a process
appearing or going); the app is tests/e2e/wsgi_app.py.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import HERE, Gunicorn, Response, fetch, open_files, read_answer, wait_until

pytestmark = pytest.mark.e2e

WORKER = "microwsgi.workers.Worker"
PLAIN = HERE / "plain.conf.py"
WAIT = 20.0  # a guard against hanging, never what a test asserts

StartGunicorn = Callable[..., Gunicorn]


def start(gunicorn: StartGunicorn, *options: str, **more: Any) -> Gunicorn:
    more.setdefault("threads", 2)
    return gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN, options=options, **more)


class Held:
    """Requests to /hold: each in flight in the app until the test releases it."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.answers: dict[str, Response | BaseException] = {}
        self._threads: list[threading.Thread] = []

    def marker(self, name: str) -> Path:
        return self.directory / f"{name}.entered"

    def release_file(self, name: str) -> Path:
        return self.directory / f"{name}.release"

    def send(self, name: str, wait: bool = True) -> None:
        path = f"/hold?marker={self.marker(name)}&release={self.release_file(name)}"

        def run() -> None:
            try:
                self.answers[name] = fetch(self.port, path)
            except BaseException as exc:  # handed to the test thread, which reports it
                self.answers[name] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)
        if wait:
            wait_until(self.marker(name).exists, WAIT, f"request {name} to reach the app")

    def release(self, name: str) -> None:
        self.release_file(name).touch()

    def answer(self, name: str) -> Response | BaseException:
        wait_until(lambda: name in self.answers, WAIT, f"the answer to {name}")
        return self.answers[name]

    def close(self) -> None:
        for name in [path.name.split(".")[0] for path in self.directory.glob("*.entered")]:
            self.release(name)
        for thread in self._threads:
            thread.join(WAIT)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Callable[[int], Held]]:
    made: list[Held] = []

    def make(port: int) -> Held:
        directory = tmp_path / f"held{len(made)}"
        directory.mkdir()
        made.append(Held(directory, port))
        return made[-1]

    yield make
    for requests in made:
        requests.close()


def pid_of(answer: Response | BaseException) -> int:
    assert isinstance(answer, Response), answer
    return int(answer.body.split()[0])


def accept_queue(port: int) -> int:
    """How many connections wait in the kernel's accept queue of the socket listening on
    127.0.0.1:port (a listening socket's rx_queue in /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# -- workers, threads, worker_connections -------------------------------------------------------


def test_two_workers_serve_and_a_full_one_leaves_the_next_connection_to_the_other(
    gunicorn: StartGunicorn, held: Callable[[int], Held]
) -> None:
    app = start(gunicorn, "--worker-connections=1", workers=2, threads=1)
    assert len(app.worker_pids()) == 2
    requests = held(app.port)
    requests.send("a")  # one worker holds it, and is at its cap of one connection
    other = pid_of(fetch(app.port, "/pid"))  # so the other worker takes this one
    requests.release("a")
    holder = pid_of(requests.answer("a"))
    assert holder != other and {holder, other} == set(app.worker_pids())


def test_threads_is_the_number_of_requests_in_flight_at_once(
    gunicorn: StartGunicorn, held: Callable[[int], Held]
) -> None:
    app = start(gunicorn, threads=3)
    (pid,) = app.worker_pids()
    requests = held(app.port)
    for name in ("a", "b", "c"):
        requests.send(name)  # three in flight together
    descriptors = len(os.listdir(f"/proc/{pid}/fd"))
    requests.send("d", wait=False)
    # "d" is accepted (one more descriptor in the worker) but has no thread to run on.
    wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) > descriptors, WAIT, "d accepted")
    assert threads_of(pid) <= 1 + 3  # the loop thread and three workers
    assert not requests.marker("d").exists()
    requests.release("a")
    wait_until(requests.marker("d").exists, WAIT, "d to get the freed thread")
    for name in ("b", "c", "d"):
        requests.release(name)
    assert all(isinstance(requests.answer(name), Response) for name in "abcd")


def test_past_worker_connections_the_next_connection_waits_in_the_backlog(
    gunicorn: StartGunicorn,
) -> None:
    app = start(gunicorn, "--worker-connections=2", "--keep-alive=30", threads=4)
    first = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    second = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    third = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        assert fetch(app.port, "/pid", conn=first).status == 200  # two kept-alive connections
        assert fetch(app.port, "/pid", conn=second).status == 200
        third.connect()  # the kernel completes the handshake; the worker does not accept
        third.request("GET", "/pid")
        wait_until(lambda: accept_queue(app.port) == 1, WAIT, "the third in the backlog")
        first.close()  # a slot frees up: the third is accepted and answered, not dropped
        answer = third.getresponse()
        assert answer.status == 200 and answer.read()
        assert accept_queue(app.port) == 0
    finally:
        for conn in (first, second, third):
            conn.close()


# -- timeout: the heartbeat --------------------------------------------------------------------


def heartbeat_file(pid: int) -> Path:
    """The worker's heartbeat file (unlinked, so found through its open descriptors)."""
    for fd, target in open_files(pid).items():
        if "wgunicorn-" in target:
            return fd
    raise AssertionError(f"worker {pid} holds no heartbeat file")


def last_notify(pid: int) -> float:
    # gunicorn writes time.monotonic() into the file's times (WorkerTmp.notify).
    return heartbeat_file(pid).stat().st_mtime


def test_timeout_a_worker_with_a_free_thread_keeps_notifying_one_all_stuck_is_replaced(
    gunicorn: StartGunicorn, held: Callable[[int], Held], tmp_path: Path
) -> None:
    app = start(gunicorn, "--timeout=2", f"--worker-tmp-dir={tmp_path}", threads=2)
    (pid,) = app.worker_pids()
    requests = held(app.port)
    requests.send("a")
    stuck_since = time.monotonic()
    # One thread stuck well past the timeout, the other free: the heartbeat goes on.
    wait_until(lambda: last_notify(pid) > stuck_since + 3, WAIT, "a notify 3 s into it")
    assert pid_of(fetch(app.port, "/pid")) == pid
    assert "WORKER TIMEOUT" not in app.log()
    # Both threads stuck: no more notify, and the arbiter kills and replaces the worker.
    requests.send("b")
    app.wait_for_log(f"WORKER TIMEOUT (pid:{pid})", timeout=WAIT)
    wait_until(lambda: app.worker_pids() not in ([], [pid]), WAIT, "a new worker")
    (replacement,) = app.worker_pids()
    assert pid_of(fetch(app.port, "/pid")) == replacement != pid
    for name in ("a", "b"):
        assert not isinstance(requests.answer(name), Response)  # their worker was killed


# -- graceful_timeout, SIGTERM, SIGQUIT -----------------------------------------------------------


def test_sigterm_stops_accepting_closes_idle_finishes_in_flight_and_exits_0(
    gunicorn: StartGunicorn, held: Callable[[int], Held]
) -> None:
    app = start(gunicorn, "--keep-alive=30")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as idle:
        idle.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        reader = idle.makefile("rb")
        assert read_answer(reader)  # answered and kept alive, now idle
        requests = held(app.port)
        requests.send("a")
        app.send_signal(signal.SIGTERM)
        # The idle connection is closed (after gthread's 2 s for a request on its way).
        assert reader.read() == b""
        wait_until(lambda: not_accepting(app.port), WAIT, "the listener to close")
        requests.release("a")
        answer = requests.answer("a")
        assert isinstance(answer, Response) and answer.body.endswith(b" released")
        assert answer.headers["Connection"] == "close"
        assert app.proc is not None and app.proc.wait(WAIT) == 0


def not_accepting(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_graceful_timeout_bounds_the_wait_for_a_stuck_request(
    gunicorn: StartGunicorn, held: Callable[[int], Held]
) -> None:
    stuck = start(gunicorn, "--graceful-timeout=1")
    requests = held(stuck.port)
    requests.send("a")  # never released while the server stops
    stuck.send_signal(signal.SIGTERM)
    assert stuck.proc is not None and stuck.proc.wait(WAIT) == 0
    assert "1 connection(s) still busy at shutdown" in stuck.log()
    assert not isinstance(requests.answer("a"), Response)


def test_sigquit_stops_at_once_without_waiting_for_requests(
    gunicorn: StartGunicorn, held: Callable[[int], Held]
) -> None:
    app = start(gunicorn)
    requests = held(app.port)
    requests.send("a")
    app.send_signal(signal.SIGQUIT)
    assert app.proc is not None and app.proc.wait(WAIT) == 0
    assert not isinstance(requests.answer("a"), Response)


# -- max_requests, max_requests_jitter -----------------------------------------------------------


def test_max_requests_restarts_workers_cleanly_and_loses_no_request(
    gunicorn: StartGunicorn,
) -> None:
    app = start(gunicorn, "--max-requests=10", "--max-requests-jitter=5", "--keep-alive=5")
    pids: list[int] = []
    failures: list[BaseException] = []

    def client() -> None:
        conn = None
        for _ in range(30):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
                answer = fetch(app.port, "/pid", conn=conn)
                pids.append(pid_of(answer))
                if answer.headers.get("Connection") == "close":
                    conn.close()
                    conn = None
            except BaseException as exc:  # a lost request: reported below
                failures.append(exc)
                conn = None
        if conn is not None:
            conn.close()

    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    assert failures == []
    assert len(pids) == 90
    served = Counter(pids)
    assert len(served) >= 5  # 90 requests, at most 15 (+2 in flight) per worker
    last = pids[-1]
    for pid, count in served.items():
        if pid != last:
            # Past its limit (10-15) a worker answers each of the other two connections at
            # most once more, with "close" (gthread, which accepts on, serves up to 3 more).
            assert 10 <= count <= 15 + 2, served
    assert "WORKER TIMEOUT" not in app.log() and "exited with code" not in app.log()


def test_max_requests_jitter_counts_are_within_bounds_one_client_at_a_time(
    gunicorn: StartGunicorn,
) -> None:
    app = start(gunicorn, "--max-requests=4", "--max-requests-jitter=3", "--keep-alive=5")
    pids = [pid_of(fetch(app.port, "/pid")) for _ in range(30)]
    counts = [count for pid, count in Counter(pids).items() if pid != pids[-1]]
    assert counts and all(4 <= count <= 7 for count in counts), counts


# -- reload and signals to the master ------------------------------------------------------------

VERSIONED = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [{version!r}]
"""


def test_reload_restarts_the_worker_when_the_code_changes(
    gunicorn: StartGunicorn, tmp_path: Path
) -> None:
    module = tmp_path / "versioned.py"
    module.write_text(VERSIONED.format(version=b"one"))
    app = gunicorn(
        "versioned:app", chdir=tmp_path, worker_class=WORKER, config=PLAIN, options=["--reload"]
    )
    assert fetch(app.port, "/").body == b"one"
    module.write_text(VERSIONED.format(version=b"two"))

    def new_code_served() -> bool:
        # gunicorn's reloader takes a file's first mtime when its thread first looks at it,
        # which may come after the write above (the thread starts as the worker boots): the
        # mtime moves on at every try, so that some change comes after that first look.
        os.utime(module)
        return fetch(app.port, "/").body == b"two"

    wait_until(new_code_served, WAIT, "the new code to serve")
    assert "Worker reloading:" in app.log() and "versioned.py modified" in app.log()


def test_sighup_starts_new_workers_with_new_code_and_the_old_finish_their_requests(
    gunicorn: StartGunicorn, held: Callable[[int], Held], tmp_path: Path
) -> None:
    app = start(gunicorn)
    (old,) = app.worker_pids()
    requests = held(app.port)
    requests.send("a")
    app.send_signal(signal.SIGHUP)
    app.wait_for_log("Handling signal: hup")
    wait_until(lambda: any(pid != old for pid in app.worker_pids()), WAIT, "a new worker")
    requests.release("a")
    assert pid_of(requests.answer("a")) == old  # the old worker finished it
    wait_until(lambda: old not in app.worker_pids(), WAIT, "the old worker to exit")
    assert pid_of(fetch(app.port, "/pid")) != old


def test_sigusr1_reopens_the_access_and_error_logs(gunicorn: StartGunicorn) -> None:
    app = start(gunicorn)
    (pid,) = app.worker_pids()
    assert fetch(app.port, "/pid").status == 200
    wait_until(lambda: "GET /pid" in access_text(app), WAIT, "the first access line")
    app.access_log.rename(app.access_log.with_suffix(".old"))
    app.error_log.rename(app.error_log.with_suffix(".old"))
    app.send_signal(signal.SIGUSR1)  # the master reopens its logs and signals its workers

    def worker_reopened() -> bool:
        opened = set(open_files(pid).values())
        return {str(app.access_log), str(app.error_log)} <= opened

    wait_until(worker_reopened, WAIT, "the worker to reopen both logs")
    assert fetch(app.port, "/errors").status == 200
    wait_until(lambda: "GET /errors" in access_text(app), WAIT, "an access line in the new file")
    app.wait_for_log("a line for wsgi.errors")  # wsgi.errors writes to the new error log


def access_text(app: Gunicorn) -> str:
    return app.access_log.read_text() if app.access_log.exists() else ""


def test_sigttin_and_sigttou_add_and_remove_a_worker(gunicorn: StartGunicorn) -> None:
    app = start(gunicorn)
    (first,) = app.worker_pids()
    app.send_signal(signal.SIGTTIN)
    wait_until(lambda: len(app.worker_pids()) == 2, WAIT, "a second worker")
    assert {pid_of(fetch(app.port, "/pid")) for _ in range(3)} <= set(app.worker_pids())
    app.send_signal(signal.SIGTTOU)
    wait_until(lambda: len(app.worker_pids()) == 1, WAIT, "back to one worker")
    assert first not in app.worker_pids()  # the oldest goes, gracefully
    assert pid_of(fetch(app.port, "/pid")) == app.worker_pids()[0]
