"""microwsgi.gunicorn.worker without a running gunicorn: how its settings map onto the engine.

The worker under a real gunicorn is tested end to end in tests/e2e/test_worker*.py.
"""

from __future__ import annotations

from typing import Any

import doc_pages
import pytest
import tools

gunicorn = tools.require_extra("gunicorn")
from gunicorn.config import Config  # noqa: E402 - after require_extra

from microwsgi.gunicorn.worker import (  # noqa: E402 - after require_extra
    NOT_HONOURED,
    OWN_OPTIONS,
    UNLIMITED_TARGET,
    ignored_settings,
    refusal,
    server_config,
)


def config(**settings: Any) -> Config:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_gunicorns_settings_become_the_engines_options() -> None:
    cfg = config(
        threads=6,
        worker_connections=50,
        keepalive=7,
        graceful_timeout=12,
        limit_request_line=1000,
        limit_request_fields=20,
        limit_request_field_size=300,
    )
    options = server_config(cfg, 1234, {})
    assert options.threads == 6 and options.max_connections == 50
    assert options.keepalive_timeout == 7
    assert options.shutdown_timeout == 11.5  # the worker exits by itself before the kill
    assert options.keepalive_on_stop == 2.0  # gthread's, within the keep-alive timeout
    assert options.max_requests == 1234
    assert options.max_request_line == 1000 and options.max_header_count == 20
    assert options.max_field_size == 300
    assert options.max_header_bytes == 20 * 302 + 4  # gunicorn's max_buffer_headers
    assert options.access_log is False  # gunicorn's logger writes it


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"limit_request_line": 0}, {"max_request_line": None, "max_target": UNLIMITED_TARGET}),
        ({"limit_request_line": 100_000}, {"max_request_line": 8190}),
        ({"limit_request_fields": 0}, {"max_header_count": 32768}),
        ({"limit_request_fields": 100_000}, {"max_header_count": 32768}),
        ({"limit_request_field_size": 0}, {"max_field_size": 8190}),
        ({"keepalive": 0}, {"keepalive_timeout": 10.0, "keepalive_on_stop": 2.0}),
        ({"keepalive": 1}, {"keepalive_timeout": 1, "keepalive_on_stop": 1}),
    ],
    ids=["line-0", "line-cap", "fields-0", "fields-cap", "field-size-0", "keepalive-0",
         "keepalive-1"],
)  # fmt: skip
def test_zero_and_too_large_limits_are_clamped_as_gunicorns_parser_clamps_them(
    settings: dict[str, Any], expected: dict[str, Any]
) -> None:
    options = server_config(config(**settings), None, {})
    assert {name: getattr(options, name) for name in expected} == expected


def test_own_options_come_from_the_environment() -> None:
    environ = {
        "MICROWSGI_HEADER_TIMEOUT": "2.5",
        "MICROWSGI_IO_TIMEOUT": "4",
        "MICROWSGI_MAX_BODY_SIZE": "1000",
    }
    options = server_config(config(keepalive=0), None, environ)
    assert options.header_timeout == 2.5 and options.io_timeout == 4.0
    assert options.max_body_size == 1000
    assert options.keepalive_timeout == 2.5  # keepalive 0: a new connection gets the header's


@pytest.mark.parametrize(
    ("environ", "settings", "says"),
    [
        ({"MICROWSGI_IO_TIMEOUT": "later"}, {}, "MICROWSGI_IO_TIMEOUT='later' is not a number"),
        ({"MICROWSGI_HEADER_TIMEOUT": "0"}, {}, "MICROWSGI_HEADER_TIMEOUT: header_timeout must"),
        ({"MICROWSGI_MAX_BODY_SIZE": "-1"}, {}, "MICROWSGI_MAX_BODY_SIZE: max_body_size must"),
        ({}, {"certfile": "c.pem", "keyfile": "k.pem"}, "does not serve TLS (certfile/keyfile)"),
        ({}, {"keyfile": "k.pem"}, "does not serve TLS"),
        ({}, {"protocol": "uwsgi"}, "speaks HTTP only"),
    ],
    ids=["not-a-number", "zero-timeout", "negative-size", "tls", "key-only", "uwsgi"],
)
def test_what_cannot_work_is_one_line_naming_it(
    environ: dict[str, str], settings: dict[str, Any], says: str
) -> None:
    line = refusal(config(**settings), environ)
    assert line is not None and says in line and "\n" not in line
    assert line.startswith("microwsgi.workers.Worker")


def test_a_sound_config_is_not_refused() -> None:
    assert refusal(config(), {}) is None


def test_every_ignored_setting_is_warned_about_when_set_and_only_then() -> None:
    assert ignored_settings(config()) == []
    said = ignored_settings(config(http_protocols="h1,h2", proxy_protocol="v2"))
    assert said == [
        "http_protocols = ['h1', 'h2'] is ignored by microwsgi.workers.Worker: "
        + NOT_HONOURED["http_protocols"],
        "proxy_protocol = 'v2' is ignored by microwsgi.workers.Worker: "
        + NOT_HONOURED["proxy_protocol"],
    ]


def test_every_ignored_setting_is_one_gunicorn_knows() -> None:
    assert set(NOT_HONOURED) <= set(Config().settings)


def test_the_docs_list_every_ignored_setting_and_every_own_option() -> None:
    section = doc_pages.section(
        "production.md", "The gunicorn worker class: `microwsgi.workers.Worker`"
    )
    for name in [*NOT_HONOURED, *OWN_OPTIONS]:
        assert f"`{name}`" in section, name


def test_a_gunicorn_without_the_settings_it_applies_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gunicorn, "version_info", (22, 0, 0))
    monkeypatch.setattr(gunicorn, "__version__", "22.0.0")
    line = refusal(config(), {})
    assert line == "microwsgi.workers.Worker needs gunicorn 23 or later, not 22.0.0"
