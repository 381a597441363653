"""The routing page (docs/routing.md) does what its comments say.

Each section's Python blocks are executed as they stand (Verb shortcuts, Typed parameters,
Groups, URL building), then driven through WebTest. A `url_for(...)  # 'result'` line on the
page is checked against the result its comment shows.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

import pytest
import webtest
from doc_pages import ROOT, python_blocks
from doc_pages import section as page_section

from microwsgi.routing.listing import format_routes


def section(title: str) -> str:
    return page_section("routing.md", title)


def run_section(title: str) -> dict[str, Any]:
    """Execute every Python block of the section in one namespace; return it."""
    blocks = python_blocks(section(title))
    assert blocks, f"no Python block under '## {title}'"
    namespace: dict[str, Any] = {"__name__": f"docs_{title.split()[0].lower()}"}
    for block in blocks:
        exec(compile(block, f"routing.md ## {title}", "exec"), namespace)
    return namespace


def test_verb_shortcuts_section() -> None:
    ns = run_section("Verb shortcuts")
    app = webtest.TestApp(ns["server"])
    assert app.get("/notes").json == [{"id": 1, "text": "hello"}]
    assert app.post_json("/notes", {"text": "x"}, status=201).json == {"text": "x"}
    assert ns["server"].url_for("create_note") == "/notes"


def test_typed_parameters_section() -> None:
    ns = run_section("Typed parameters")
    app = webtest.TestApp(ns["server"])
    assert app.get("/orders/7").json == {"id": 8}
    assert app.get("/orders/2024-02-29").json == {"weekday": "Thursday"}
    assert app.get("/orders/2024-02-30").json == {"code": "2024-02-30"}
    assert app.get("/orders/abc").json == {"code": "abc"}


def test_groups_section() -> None:
    ns = run_section("Groups")
    app = webtest.TestApp(ns["server"])
    answer = app.get("/api/v1/notes/7", headers={"Origin": "https://x.example"})
    assert answer.json == {"id": 7, "trail": ["everywhere", "v1", "route"]}
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert app.get("/api/v1").json == {"note": "/api/v1/notes/1"}
    assert app.get("/api/v1/").text == "slash"


def test_url_building_section() -> None:
    ns = run_section("URL building")
    app = webtest.TestApp(ns["server"])
    assert app.get("/hello/ada").json == {"self": "/hello/ada"}
    claims = re.findall(r"^(server\.url_for\(.*\))\s+# '([^']*)'", section("URL building"), re.M)
    assert len(claims) == 3
    for call, shown in claims:
        assert eval(call, ns) == shown, call


def test_listing_routes_section_shows_the_real_table(monkeypatch: pytest.MonkeyPatch) -> None:
    examples = ROOT / "examples"
    monkeypatch.syspath_prepend(str(examples))
    spec = importlib.util.spec_from_file_location("library", examples / "library.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "library", module)
    spec.loader.exec_module(module)
    console = re.search(r"```console\n(.*?)```", section("Listing routes"), re.S)
    assert console is not None
    shown = console.group(1).split("$ ")[1].splitlines()[1:]  # the first command's output
    assert shown == format_routes(module.server.routes()).splitlines()
