"""nginx, configured by the shipped deploy/nginx.conf, in front of two real gunicorn instances,
running gunicorn's gthread worker or microwsgi's worker class (each test runs with both).

Each test renders the site from deploy/nginx.conf (only the upstream servers, listen lines and
static directory change: see e2e_support.render_site) and runs the Debian nginx as the test user.
The backends run tests/e2e/backend_app.py with Server(trusted_proxies=1), as the shipped config
expects, each answering with its own BACKEND_ID.
"""

from __future__ import annotations

import signal
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_support import DEPLOY, Gunicorn, Nginx, Response, fetch, run_checked, wait_until

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    nginx: Nginx
    backends: dict[str, Gunicorn]


@pytest.fixture(
    scope="module", params=["gthread", "microwsgi.workers.Worker"], ids=["gthread", "microwsgi"]
)
def worker_class(request: pytest.FixtureRequest) -> str:
    """The backends' worker class, which the shipped gunicorn.conf.py takes from
    MICROWSGI_WORKER_CLASS, as a deployment would set it."""
    return str(request.param)


def start_stack(
    worker_class: str,
    gunicorn: Callable[..., Gunicorn],
    nginx: Callable[..., Nginx],
    tls: bool,
) -> Stack:
    env = {"MICROWSGI_WORKER_CLASS": worker_class, "TRUSTED_PROXIES": "1"}
    backends = {
        name: gunicorn(
            "backend_app:server", worker_class=None, threads=None, env={**env, "BACKEND_ID": name}
        )
        for name in ("a", "b")
    }
    for backend in backends.values():
        assert f"Using worker: {worker_class}" in backend.log()
    upstreams = [f"127.0.0.1:{backend.port}" for backend in backends.values()]
    return Stack(nginx(upstreams, tls=tls), backends)


@pytest.fixture(scope="module")
def stack(
    worker_class: str,
    module_gunicorn: Callable[..., Gunicorn],
    module_nginx: Callable[..., Nginx],
) -> Stack:
    """One stack, TLS included, shared by the tests that leave it as they found it."""
    return start_stack(worker_class, module_gunicorn, module_nginx, tls=True)


@pytest.fixture
def own_stack(
    worker_class: str, gunicorn: Callable[..., Gunicorn], nginx: Callable[..., Nginx]
) -> Stack:
    """A stack of the test's own, for a test that stops a backend."""
    return start_stack(worker_class, gunicorn, nginx, tls=False)


def test_shipped_site_is_valid_as_it_is(tmp_path: Path) -> None:
    site = Nginx(tmp_path, (DEPLOY / "nginx.conf").read_text(), port=0)
    site.write_config()
    run_checked(site.command("-t"), "nginx -t on deploy/nginx.conf as shipped")


def test_requests_reach_both_backends_over_kept_alive_connections(stack: Stack) -> None:
    proxy = stack.nginx
    answers = [fetch(proxy.port, "/id") for _ in range(8)]
    assert {a.status for a in answers} == {200}
    ports: dict[str, list[str]] = {"a": [], "b": []}
    for answer in answers:
        data = answer.json()
        ports[data["id"]].append(data["remote_port"])
    assert all(ports.values()), ports
    # nginx reused its upstream connections (the shipped keepalive settings at work): each
    # backend saw several requests but fewer client ports than requests.
    for seen in ports.values():
        assert len(set(seen)) < len(seen), ports


def test_forwarded_headers_reach_the_app_and_spoofing_fails(stack: Stack) -> None:
    proxy = stack.nginx
    # The client connects from 127.0.0.3, nginx reaches the backends from 127.0.0.1, and the
    # client tries to pass itself off as 203.0.113.9.
    headers = {"Host": "shop.example.test", "X-Forwarded-For": "203.0.113.9"}
    answer = fetch(proxy.port, "/whoami?x=1", headers=headers, source="127.0.0.3")
    assert answer.status == 200
    seen = answer.json()
    assert seen["remote_addr"] == "127.0.0.3"
    assert seen["x_forwarded_for"] == "203.0.113.9, 127.0.0.3"
    assert seen["scheme"] == "http"
    assert seen["host"] == f"shop.example.test:{proxy.port}"
    assert seen["url"] == f"http://shop.example.test:{proxy.port}/whoami?x=1"


def test_tls_terminated_by_nginx_is_https_for_the_app(stack: Stack) -> None:
    proxy = stack.nginx
    context = ssl.create_default_context(cafile=str(proxy.root / "cert.pem"))
    answer = fetch(proxy.tls_port, "/whoami", headers={"Host": "shop.example.test"}, tls=context)
    assert answer.status == 200
    seen = answer.json()
    assert seen["scheme"] == "https"
    assert seen["url"] == f"https://shop.example.test:{proxy.tls_port}/whoami"
    assert seen["remote_addr"] == "127.0.0.1"


def test_a_session_written_through_one_backend_is_read_through_the_other(stack: Stack) -> None:
    # No server-side store: the signed cookie is the session, so any process with the secret
    # reads it. nginx takes turns between the two gunicorn instances.
    proxy = stack.nginx
    written = fetch(proxy.port, "/session", method="POST", body=b"")
    assert written.status == 200
    writer = written.json()["id"]
    cookie = written.headers["Set-Cookie"].split(";", 1)[0]
    readers = {}
    for _ in range(6):
        answer = fetch(proxy.port, "/session", headers={"Cookie": cookie})
        assert answer.status == 200
        assert "Set-Cookie" not in answer.headers  # read, unchanged: nothing sent back
        readers[answer.json()["id"]] = answer.json()["session"]
    assert set(readers) == {"a", "b"}, readers
    assert readers == {"a": {"written_by": writer}, "b": {"written_by": writer}}


def test_static_files_are_served_by_nginx_alone(stack: Stack) -> None:
    started = stack
    answer = fetch(started.nginx.port, "/static/hello.txt")
    assert (answer.status, answer.body) == (200, b"served by nginx\n")
    assert answer.headers["Content-Type"] == "text/plain"
    assert fetch(started.nginx.port, "/id").status == 200

    def logs() -> str:
        return "".join(b.access_log.read_text() for b in started.backends.values())

    # gunicorn writes the access log line just after the response: wait for it, so the check
    # below looks at a log that is known to record what reached the backends.
    wait_until(lambda: "GET /id" in logs(), 10, "the backend's access log")
    assert "/static/" not in logs()


def test_stopping_one_backend_is_invisible_to_clients(own_stack: Stack) -> None:
    started = own_stack
    proxy, backend_a = started.nginx, started.backends["a"]
    answers: list[Response | BaseException] = []
    stopped = threading.Event()
    done = threading.Event()

    def client() -> None:
        # Requests without pause before, during and after backend a's shutdown: bounded in
        # number and in time, and ending soon after the shutdown is over.
        deadline = time.monotonic() + 30
        after_stop = 0
        while len(answers) < 2000 and after_stop < 40 and time.monotonic() < deadline:
            try:
                answers.append(fetch(proxy.port, "/id"))
            except BaseException as exc:  # reported by the test thread
                answers.append(exc)
            after_stop += stopped.is_set()
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: len(answers) >= 20, 15, "requests through nginx before the stop")
        assert backend_a.proc is not None
        backend_a.proc.send_signal(signal.SIGTERM)
        assert backend_a.proc.wait(15) == 0
        stopped.set()
        wait_until(done.is_set, 30, "the requests after the stop")
    finally:
        thread.join(30)

    failures = [a for a in answers if not isinstance(a, Response) or a.status != 200]
    assert failures == []
    ids = [a.json()["id"] for a in answers if isinstance(a, Response)]
    assert {"a", "b"} <= set(ids[:20])  # both served before the stop...
    assert set(ids[-20:]) == {"b"}  # ...and b alone after it
