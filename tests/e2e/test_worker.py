"""microwsgi.workers.Worker under the real gunicorn: started the ways gunicorn users start a
worker class, serving any WSGI application, refusing at boot what it cannot do (TLS, uwsgi)
and warning at boot, one line each, about the settings it ignores."""

from __future__ import annotations

import re
import signal
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tools
from e2e_support import HERE, Gunicorn, fetch

tools.require_extra("gunicorn.config")
from microwsgi.gunicorn.worker import NOT_HONOURED  # noqa: E402 - after require_extra

pytestmark = pytest.mark.e2e

StartGunicorn = Callable[..., Gunicorn]
WORKER = "microwsgi.workers.Worker"
PLAIN = HERE / "plain.conf.py"

# A value other than gunicorn's default for each setting the worker ignores (http_protocols
# would need the h2 package before gunicorn even starts: tests/gunicorn/test_worker_settings.py
# has it).
IGNORED_VALUES: dict[str, Any] = {
    "http2_cleartext": "upgrade",
    "http2_max_concurrent_streams": 50,
    "http2_initial_window_size": 65536,
    "http2_max_frame_size": 32768,
    "http2_max_header_list_size": 32768,
    "proxy_protocol": "v1",
    "proxy_allow_ips": "127.0.0.2",
    "uwsgi_allow_ips": "127.0.0.2",
    "http_parser": "python",
    "casefold_http_method": True,
    "permit_unconventional_http_method": True,
    "permit_unconventional_http_version": True,
    "permit_obsolete_folding": True,
    "strip_header_spaces": True,
    "asgi_loop": "asyncio",
    "asgi_lifespan": "off",
    "asgi_disconnect_grace_period": 5,
    "websocket_max_message_size": 1024,
    "root_path": "/api",
    "tmp_upload_dir": "/tmp",
    "ca_certs": "/nonexistent/ca.pem",
    "cert_reqs": 1,
    "ciphers": "HIGH",
    "suppress_ragged_eofs": False,
    "do_handshake_on_connect": True,
}


def test_dash_k_serves_a_microwsgi_app(gunicorn: StartGunicorn) -> None:
    # Keep-alive, a failing handler and SIGTERM are in test_gunicorn.py, beside gunicorn's own.
    app = gunicorn("backend_app:server", worker_class=WORKER, config=PLAIN)
    answer = fetch(app.port, "/id")
    assert answer.status == 200 and answer.json()["pid"] in app.worker_pids()
    assert answer.headers["Server"] == "microwsgi"  # the engine answered, not gunicorn's
    assert f"Using worker: {WORKER}" in app.log()


def test_worker_class_from_a_config_file_serves_a_plain_wsgi_app(
    gunicorn: StartGunicorn, tmp_path: Path
) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(f'worker_class = "{WORKER}"\nthreads = 2\ncontrol_socket_disable = True\n')
    app = gunicorn("wsgi_app:app", worker_class=None, threads=None, config=config)
    assert f"Using worker: {WORKER}" in app.log()
    answer = fetch(app.port, "/echo", method="POST", body=b"any WSGI app")
    assert (answer.status, answer.body) == (200, b"any WSGI app")
    environ = fetch(app.port, "/environ?a=1").json()
    assert environ["QUERY_STRING"] == "a=1" and environ["wsgi.multithread"] is True
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1" and environ["REMOTE_ADDR"] == "127.0.0.1"


def test_serves_a_flask_app(gunicorn: StartGunicorn, tmp_path: Path) -> None:
    (tmp_path / "flask_app.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask, request

            app = Flask(__name__)

            @app.post("/greet/<name>")
            def greet(name):
                return {"hello": name, "body": request.get_data(as_text=True)}
            """
        )
    )
    app = gunicorn("flask_app:app", chdir=tmp_path, worker_class=WORKER, config=PLAIN)
    answer = fetch(app.port, "/greet/ada", method="POST", body=b"hi")
    assert answer.json() == {"hello": "ada", "body": "hi"}


def test_a_failing_app_is_a_500_and_its_traceback_is_in_the_error_log_once(
    module_gunicorn: StartGunicorn,
) -> None:
    app = module_gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN)
    before = len(app.log())
    pid = fetch(app.port, "/pid").body.split()[0]
    failed = fetch(app.port, "/boom")
    assert failed.status == 500 and b"a bug" not in failed.body
    assert fetch(app.port, "/pid").body.split()[0] == pid  # the same worker goes on
    app.wait_for_log("RuntimeError: a bug in a plain WSGI app")
    log = app.log()[before:]
    assert log.count("RuntimeError: a bug in a plain WSGI app") == 1
    assert log.count("Traceback (most recent call last)") == 1
    assert re.search(r"\[ERROR\] error handling GET /boom\n", log)  # gunicorn's format


def test_wsgi_errors_writes_to_gunicorns_error_log(module_gunicorn: StartGunicorn) -> None:
    app = module_gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN)
    assert fetch(app.port, "/errors").status == 200
    app.wait_for_log("a line for wsgi.errors\n")


def test_ignored_settings_are_warned_about_at_boot_one_line_each(
    gunicorn: StartGunicorn, tmp_path: Path
) -> None:
    assert set(IGNORED_VALUES) == set(NOT_HONOURED) - {"http_protocols"}
    config = tmp_path / "gunicorn.conf.py"
    lines = [f"{name} = {value!r}" for name, value in IGNORED_VALUES.items()]
    config.write_text("\n".join(["control_socket_disable = True", *lines]) + "\n")
    app = gunicorn("wsgi_app:app", worker_class=WORKER, config=config)
    assert fetch(app.port, "/pid").status == 200  # and it serves
    warnings = [line for line in app.log().splitlines() if "[WARNING]" in line]
    for name in IGNORED_VALUES:
        said = [line for line in warnings if f"] {name} = " in line]
        assert len(said) == 1, (name, warnings)
        assert f"is ignored by {WORKER}: {NOT_HONOURED[name]}" in said[0]
    assert len(warnings) == len(IGNORED_VALUES)


def test_default_settings_draw_no_warning(module_gunicorn: StartGunicorn) -> None:
    app = module_gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN)
    assert "[WARNING]" not in app.log()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--certfile", "cert.pem", "--keyfile", "key.pem"], "does not serve TLS"),
        (["--protocol", "uwsgi"], "speaks HTTP only, not protocol = 'uwsgi'"),
    ],
    ids=["tls", "uwsgi"],
)
def test_what_cannot_work_is_refused_at_boot_in_one_line(
    tmp_path: Path, options: list[str], says: str
) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("not read: refused before")
    app = Gunicorn("wsgi_app:app", HERE, tmp_path, worker_class=WORKER, config=PLAIN)
    app.options = [option.replace("cert.pem", str(tmp_path / "cert.pem")) for option in options]
    app.options = [option.replace("key.pem", str(tmp_path / "key.pem")) for option in app.options]
    done = app.run_to_exit()
    assert done.returncode == 1
    said = [line for line in done.stderr.splitlines() if says in line]
    assert len(said) == 1 and said[0].startswith(f"Error: {WORKER}"), done.stderr


def test_microwsgi_options_without_a_gunicorn_setting_come_from_the_environment(
    gunicorn: StartGunicorn,
) -> None:
    env = {"MICROWSGI_MAX_BODY_SIZE": "10", "MICROWSGI_HEADER_TIMEOUT": "0.3"}
    app = gunicorn("wsgi_app:app", worker_class=WORKER, config=PLAIN, env=env)
    big = fetch(app.port, "/echo", method="POST", body=b"x" * 11)
    assert big.status == 413
    assert fetch(app.port, "/echo", method="POST", body=b"x" * 10).status == 200
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as client:
        client.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n")  # never finished
        answer = client.makefile("rb").read()  # to the end: the server closes after it
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_bad_microwsgi_option_is_refused_at_boot_in_one_line(tmp_path: Path) -> None:
    env = {"MICROWSGI_HEADER_TIMEOUT": "soon"}
    app = Gunicorn("wsgi_app:app", HERE, tmp_path, worker_class=WORKER, config=PLAIN, env=env)
    done = app.run_to_exit()
    assert done.returncode == 1
    assert f"Error: {WORKER}: MICROWSGI_HEADER_TIMEOUT='soon' is not a number" in done.stderr


def test_a_reload_that_brings_tls_is_refused_by_the_new_worker(
    gunicorn: StartGunicorn, tmp_path: Path
) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("control_socket_disable = True\n")
    app = gunicorn("wsgi_app:app", worker_class=WORKER, config=config)
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("not read: refused before")
    config.write_text(
        "control_socket_disable = True\n"
        f"certfile = {str(tmp_path / 'cert.pem')!r}\nkeyfile = {str(tmp_path / 'key.pem')!r}\n"
    )
    app.send_signal(signal.SIGHUP)  # check_config runs at boot only: the worker refuses
    assert app.proc is not None and app.proc.wait(20) == 3  # gunicorn: a worker failed to boot
    assert app.log().count(f"{WORKER} does not serve TLS") == 1
