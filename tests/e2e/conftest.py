"""Fixtures for the end-to-end tests: each stops what it started, whatever the test did."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    DEPLOY,
    HERE,
    Gunicorn,
    Nginx,
    free_port,
    nginx_binary,
    render_site,
    self_signed_certificate,
)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    """Start gunicorn instances: `gunicorn("todos:server", chdir=EXAMPLES, worker_class=...)`."""
    started: list[Gunicorn] = []

    def start(app: str, chdir: Path = HERE, **options: Any) -> Gunicorn:
        logdir = tmp_path / f"gunicorn{len(started)}"
        instance = Gunicorn(app, chdir, logdir, **options)
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        if instance.proc is not None:
            instance.stop()  # graceful, and quick: nothing is in flight by now


@pytest.fixture(scope="module")
def module_gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gunicorn]]:
    """Like `gunicorn`, but each instance serves the whole module: the tests that start one
    with the same arguments share it (a gunicorn takes about a second to boot)."""
    started: dict[str, Gunicorn] = {}

    def start(app: str, chdir: Path = HERE, **options: Any) -> Gunicorn:
        key = repr((app, str(chdir), sorted(options.items())))
        if key not in started:
            logdir = tmp_path_factory.mktemp("gunicorn")
            started[key] = Gunicorn(app, chdir, logdir, **options)  # stopped even if it fails
            started[key].start()
        return started[key]

    yield start
    for instance in started.values():
        if instance.proc is not None:
            instance.stop()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Start nginx with a site rendered from the shipped deploy/nginx.conf.

    With `tls=True` the site also gets what certbot would add: a TLS listener and a certificate.
    """
    nginx_binary()  # skip (or fail under CI) before any backend is started for nothing
    started: list[Nginx] = []

    def start(upstreams: list[str], tls: bool = False) -> Nginx:
        root = tmp_path / f"nginx{len(started)}"
        static = root / "static"
        static.mkdir(parents=True)
        (static / "hello.txt").write_text("served by nginx\n")
        port, tls_port = free_port(), free_port() if tls else 0
        listen = [f"127.0.0.1:{port}"]
        certificate = None
        if tls:
            listen.append(f"127.0.0.1:{tls_port} ssl")
            certificate = self_signed_certificate(root)
        site = render_site(
            (DEPLOY / "nginx.conf").read_text(),
            upstreams=upstreams,
            listen=listen,
            static_dir=static,
            certificate=certificate,
        )
        instance = Nginx(root, site, port, tls_port)
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        if instance.proc is not None:
            instance.stop()
