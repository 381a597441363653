"""What importing the package loads: the framework never pulls in the development server."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tools


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}; import sys; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import microwsgi",
        "from microwsgi import Server, HTTPError, abort, send_file, make_response, redirect",
        "import microwsgi.app, microwsgi.request, microwsgi.response, microwsgi.files",
    ],
)
def test_the_framework_loads_no_server_module(code: str) -> None:
    loaded = _loaded_after(code)
    assert "microwsgi.app" in loaded
    assert not {m for m in loaded if m.startswith("microwsgi.server")}, sorted(loaded)


def test_serve_is_loaded_when_used_and_is_the_servers_own() -> None:
    loaded = _loaded_after(
        "import microwsgi, microwsgi.server; assert microwsgi.serve is microwsgi.server.serve"
    )
    assert "microwsgi.server" in loaded
    with pytest.raises(AttributeError, match="no_such_name"):
        import microwsgi

        microwsgi.no_such_name  # noqa: B018 - the attribute access is the test


def test_routes_that_declare_no_types_load_neither_openapi_nor_pydantic() -> None:
    plain = (
        "from microwsgi import Server; server = Server(); api = server.group('/api');"
        "server.register_handler('GET /a', lambda r: 'a'); api.get('/b')(lambda r: 'b')"
    )
    loaded = _loaded_after(plain)
    assert not {m for m in loaded if m.startswith(("microwsgi.openapi", "pydantic"))}
    # A declared status alone needs no pydantic either; a declared type loads it.
    status_only = _loaded_after(f"{plain}; server.register_handler('POST /c', print, status=201)")
    assert "microwsgi.openapi.declared" in status_only
    assert "pydantic" not in status_only
    tools.require_extra("pydantic")  # last: the rest holds without it
    typed = _loaded_after(f"{plain}; server.register_handler('POST /c', print, body=dict)")
    assert {"microwsgi.openapi.validation", "pydantic"} <= typed


@pytest.mark.parametrize("module", ["microwsgi.workers", "microwsgi.gunicorn"])
def test_the_worker_without_gunicorn_names_the_extra(module: str) -> None:
    message = tools.import_error_without("gunicorn", f"import {module}")
    assert "pip install 'microwsgi[gunicorn]'" in message
