"""Shared fixtures for the core tests: a fresh `Server`, WebTest apps around it, raw WSGI calls.

WebTest's own lint is on for every `TestApp`; the `validated` fixture adds the standard
library's `wsgiref.validate.validator` in between, so both checkers see every answer.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
import tools
import webtest
from werkzeug.test import create_environ

from microwsgi import Server


class WSGICall:
    """What one direct WSGI call produced: status, headers and the (unconsumed) app iterable."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.calls = 0
        self.body: Iterable[bytes] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        self.status, self.headers = status, headers
        self.calls += 1
        return self._write

    def _write(self, data: bytes) -> None:  # pragma: no cover - microwsgi never uses write()
        raise AssertionError("microwsgi must not use the legacy write() callable")

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return values[0] if values else None


@pytest.fixture(autouse=True)
def _current_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Lets `tools.require_program` check that a test needing a program is marked e2e."""
    tools.current_item = request.node
    yield
    tools.current_item = None


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def app(server: Server) -> webtest.TestApp:
    """WebTest (lint on) around the `server` fixture."""
    return webtest.TestApp(server)


@pytest.fixture
def validated(server: Server) -> webtest.TestApp:
    """WebTest (lint on) around `wsgiref.validate.validator(server)`."""
    return webtest.TestApp(validator(server))


@pytest.fixture
def call_wsgi() -> Callable[..., WSGICall]:
    """Call a WSGI app directly, without consuming or closing the body it returns.

    `call_wsgi(app, "/path", method="GET", **create_environ_kwargs)`; extra environ keys go in
    `environ={...}` (a value of None removes the key). Used where a test must see the raw
    iterable (streaming, close()) or the raw headers (WebOb adds a missing Content-Length).
    """

    def call(
        wsgi_app: Callable[..., Iterable[bytes]],
        path: str = "/",
        environ: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> WSGICall:
        env = create_environ(path, errors_stream=io.StringIO(), **kwargs)
        for key, value in (environ or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        result = WSGICall()
        result.body = wsgi_app(env, result.start_response)
        return result

    return call


def pytest_addoption(parser: pytest.Parser) -> None:
    """Durations of the soak and the live fuzz in tests/soak/ (short in the normal run)."""
    group = parser.getgroup("soak", "soak and live fuzz (tests/soak/)")
    group.addoption("--soak-seconds", type=float, default=30.0, help="soak traffic (default 30)")
    group.addoption("--fuzz-seconds", type=float, default=5.0, help="live fuzz (default 5)")
    group.addoption("--fuzz-seed", type=int, default=None, help="live fuzz seed (default: random)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long traffic against a live server (tests/soak/)")
