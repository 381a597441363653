"""The server's public surface: the names the docs document, and nothing else.

`microwsgi.server.__all__` is the embedding API; the modules inside define no `__all__` of
their own (they are internal). The docs' "Embedding the server" example (docs/devserver.md)
runs as written.
"""

from __future__ import annotations

import contextlib
import io
import pkgutil
import re
from importlib import import_module
from pathlib import Path

import microwsgi.server
import microwsgi.server.protocol

DEVSERVER_PAGE = Path(__file__).resolve().parents[2] / "docs" / "devserver.md"
DOCUMENTED = {"BindError", "DevServer", "Engine", "Hooks", "ServerConfig", "serve"}


def _section(title: str) -> str:
    text = DEVSERVER_PAGE.read_text("utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else len(text)]


def test_the_embedding_api_is_what_the_readme_documents() -> None:
    assert set(microwsgi.server.__all__) == DOCUMENTED
    section = _section("Embedding the server")
    for name in DOCUMENTED:
        assert f"`{name}" in section, name
        assert getattr(microwsgi.server, name) is not None


def test_the_modules_inside_export_nothing_but_the_parsers_entry_point() -> None:
    names = [m.name for m in pkgutil.walk_packages(microwsgi.server.__path__, "microwsgi.server.")]
    assert "microwsgi.server.protocol.head" in names
    exporting = [name for name in names if hasattr(import_module(name), "__all__")]
    assert exporting == ["microwsgi.server.protocol"]


def test_the_parsers_entry_point_is_what_the_docs_document() -> None:
    section = _section("Driving the parser: `microwsgi.server.protocol`")
    for name in microwsgi.server.protocol.__all__:
        assert f"`{name}" in section, name


def test_the_readme_embedding_example_runs() -> None:
    code = re.search(r"```python\n(.*?)```", _section("Embedding the server"), re.S)
    assert code is not None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.group(1), "devserver.md", "exec"), {})
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", printed.getvalue())
