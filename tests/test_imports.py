"""What importing the package loads: the framework never pulls in the development server."""

from __future__ import annotations

import subprocess
import sys

import pytest


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
