"""The container image of deploy/Dockerfile, built with podman and run, as a user without a
registry would: on a Debian base made with debootstrap, installing from a wheelhouse.

The image is built once for the module (``--format docker``: podman's default OCI format drops
HEALTHCHECK) with no network at all, which proves the wheelhouse path needs no index. One
container runs the image's own command (examples/hello.py, which registers server.health() for
the image's HEALTHCHECK); two more run examples/streaming.py, which has no health route and
whose /count answers slowly; one is stopped as soon as it runs. All run as docs/container.md
says to, with ``--init`` and a stop timeout longer than gunicorn's graceful one. Everything runs
on a podman of the test's own (tests/e2e/container_support.py), removed at the end whatever
happened.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from container_support import (
    BUILD_TIMEOUT,
    DEBOOTSTRAP_TIMEOUT,
    PODMAN_TIMEOUT,
    WHEELS,
    Podman,
    build_context,
    import_debian_base,
    podman_home,
)
from e2e_support import START_TIMEOUT, fetch, free_port, wait_until
from tools import require_program, require_root

# Making the Debian base is paid once per machine, by whichever test comes first.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(DEBOOTSTRAP_TIMEOUT + 2 * BUILD_TIMEOUT)]

BASE = "localhost/microwsgi-e2e-base:latest"
IMAGE = "localhost/microwsgi-e2e:latest"
# The `docker run --stop-timeout` that docs/container.md gives: a little longer than
# deploy/gunicorn.conf.py's graceful_timeout (30 s), so gunicorn's own end of a stop comes first.
STOP_TIMEOUT = 35


@dataclass
class Container:
    name: str
    port: int


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    require_program("podman", "the container image test")
    runc = require_program("runc", "the container image test (crun refuses this machine's cgroups)")
    require_program("debootstrap", "the container image test's Debian base")
    # podman's `--init`, which the containers run with (only a recommendation of Debian's podman).
    require_program("catatonit", "the container image test's `podman run --init`")
    require_root("the container image test: debootstrap, and podman without user namespaces")
    with podman_home() as home:
        engine = Podman(home, runc)
        try:
            yield engine
        finally:
            engine.remove_all()


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    debootstrap = require_program("debootstrap", "the container image test's Debian base")
    base = import_debian_base(debootstrap, podman, BASE)
    context = build_context(tmp_path_factory.mktemp("container") / "context", base)
    podman(
        "build", "--format", "docker", "--network", "none",
        "--build-arg", f"BASE={BASE}", "--build-arg", f"WHEELS={WHEELS}",
        "--file", str(context / "deploy" / "Dockerfile"), "--tag", IMAGE, str(context),
        timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    return IMAGE


@pytest.fixture(scope="module")
def start_container(podman: Podman, image: str) -> Iterator[Callable[..., Container]]:
    """Run the image as `name` with `command` (none: the image's own), published on a free
    port of 127.0.0.1, and wait until it answers HTTP."""
    started: list[str] = []

    def start(name: str, *command: str) -> Container:
        port = free_port()
        started.append(name)
        podman(
            "run", "--detach", "--init", "--name", name, "--publish", f"127.0.0.1:{port}:8000",
            "--env", "WEB_CONCURRENCY=2", "--stop-timeout", str(STOP_TIMEOUT),
            # No timer runs the HEALTHCHECK: systemd may not be there; the test runs it itself.
            "--health-interval", "disable",
            image, *command,
        )  # fmt: skip
        try:
            wait_until(lambda: _answers(port), START_TIMEOUT, f"container {name} to answer")
        except pytest.fail.Exception:
            pytest.fail(f"container {name} did not answer; its log:\n{podman.log(name)}")
        return Container(name, port)

    yield start
    for name in started:
        podman("rm", "--force", "--time", "0", name)


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


@pytest.fixture(scope="module")
def hello(start_container: Callable[..., Container]) -> Container:
    return start_container("hello")


def test_the_image_serves_hello_through_the_published_port(hello: Container) -> None:
    answer = fetch(hello.port, "/hello")
    assert answer.status == 200
    assert answer.json() == {"message": "Hello, World!"}


def test_every_process_in_the_container_runs_as_the_unprivileged_user(
    podman: Podman, hello: Container
) -> None:
    def processes() -> list[list[str]]:
        listing = podman("top", hello.name, "user", "huser", "args")
        return [line.split(maxsplit=2) for line in listing.splitlines()[1:]]

    def is_gunicorn(args: str) -> bool:  # `python3 .../bin/gunicorn -c ...`
        return args.split()[1].endswith("/bin/gunicorn")

    def gunicorns() -> int:
        return sum(is_gunicorn(args) for _, _, args in processes())

    # `--init`'s catatonit, the gunicorn master and its two workers, as the image's `app` user,
    # not root on the host. The master forks its workers one at a time, up to 0.1 s apart, so
    # the first may have answered before the second exists (seen in CI): wait for both, then
    # check that neither was a replacement (a worker that died at boot would be booted again).
    def booted() -> int:
        return podman.log(hello.name).count("Booting worker")

    wait_until(lambda: gunicorns() == 3 and booted() >= 2, START_TIMEOUT,
               "the master and its two workers")  # fmt: skip
    rows, log = processes(), podman.log(hello.name)
    assert len(rows) == 4 and log.count("Booting worker") == 2, f"{rows}; the log:\n{log}"
    assert [args.split()[0] for _, _, args in rows if not is_gunicorn(args)] == [
        "/run/podman-init"  # podman's name for its catatonit
    ], rows
    for user, host_user, _ in rows:
        assert user == "app"
        assert host_user != "0"


def test_the_healthcheck_passes_inside_the_container(podman: Podman, hello: Container) -> None:
    checked = podman.healthcheck(hello.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    status = podman("inspect", "--format", "{{.State.Health.Status}}", hello.name)
    assert status.strip() == "healthy"


def test_the_healthcheck_fails_for_an_app_without_the_health_route(
    podman: Podman, start_container: Callable[..., Container]
) -> None:
    # examples/streaming.py registers no server.health(): /healthz is a 404 there.
    streaming = start_container("no-health", "--chdir", "/app/examples", "streaming:server")
    assert fetch(streaming.port, "/healthz").status == 404
    checked = podman.healthcheck(streaming.name)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "unhealthy"


def test_stop_finishes_the_request_in_flight_and_exits_0(
    podman: Podman, start_container: Callable[..., Container]
) -> None:
    streaming = start_container("streaming", "--chdir", "/app/examples", "streaming:server")
    connection = http.client.HTTPConnection("127.0.0.1", streaming.port, timeout=PODMAN_TIMEOUT)
    try:
        # Five lines a second apart: the first one read, the request is being answered.
        connection.request("GET", "/count?n=5&delay=1")
        answer = connection.getresponse()
        assert answer.status == 200
        assert answer.readline() == b"1\n"
        stop = podman.start("stop", streaming.name)
        rest = answer.read()
    finally:
        connection.close()
    _, err = stop.communicate(timeout=STOP_TIMEOUT + PODMAN_TIMEOUT)
    assert stop.returncode == 0, err
    assert "resorting to SIGKILL" not in err, err
    assert rest == b"2\n3\n4\n5\n"
    code = podman("inspect", "--format", "{{.State.ExitCode}}", streaming.name).strip()
    assert code == "0", f"exit code {code}; {err}\n{podman.log(streaming.name)}"
    # gunicorn had the stop signal while the request was still being answered: it logs the signal
    # at once, and a request only when it is answered.
    log = podman.log(streaming.name)
    signal_at, request_at = log.find("Handling signal: term"), log.find('"GET /count?n=5')
    assert 0 <= signal_at < request_at, log


def test_a_stop_before_gunicorn_handles_signals_ends_the_container_at_once(
    podman: Podman, image: str
) -> None:
    # Stopped as soon as it runs, before gunicorn has installed its signal handlers: as the
    # container's first process it would not get the signal at all, and podman would kill it
    # when the stop timeout ran out (exit 137). `--init`'s catatonit hands the signal on.
    name = "stopped-at-once"
    podman(
        "run", "--detach", "--init", "--name", name, "--env", "WEB_CONCURRENCY=2",
        "--stop-timeout", str(STOP_TIMEOUT), "--health-interval", "disable", image,
    )  # fmt: skip
    try:
        stop = podman.start("stop", name)
        _, err = stop.communicate(timeout=STOP_TIMEOUT + PODMAN_TIMEOUT)
        assert stop.returncode == 0, err
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).strip()
        # 143: gunicorn ended by the signal itself, before it had handlers; 0: just after.
        assert code in ("0", "143"), f"exit code {code}; {err}\n{podman.log(name)}"
        assert "resorting to SIGKILL" not in err, err
    finally:
        podman("rm", "--force", "--time", "0", name)
