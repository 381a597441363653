"""The README and the docs hold: their imports resolve, one way each, the README's links lead to
pages and headings that exist, its test command is the one CI runs, and it stays a front page.

Also the public API rule they state: every name the package exports is one the documentation
imports, and no framework module lists an undocumented name in its ``__all__``.
"""

from __future__ import annotations

import ast
import pkgutil
import re
from collections import defaultdict
from pathlib import Path

import pytest
import tools
from doc_pages import ROOT, pages, python_blocks, read

import microwsgi
import microwsgi.server
import microwsgi.server.protocol

README = read(ROOT / "README.md")
# Everything the documentation says, README first: what it imports and names is the API.
DOCS = "\n".join(read(page) for page in pages())
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# The development server's modules are documented as a whole, by its own page; its embedding
# API is imported from `microwsgi.server`, the one place its names come from.
SERVER_MODULES = ("microwsgi.server",)
SERVER_API = set(microwsgi.server.__all__)
# The sans-IO parser's entry point, imported from `microwsgi.server.protocol`.
PROTOCOL_API = set(microwsgi.server.protocol.__all__)


def imports_in(source: str) -> list[ast.ImportFrom | ast.Import]:
    """The import statements of a snippet; lines that are not Python on their own
    (``def f(request): ...`` fragments are) are skipped, statement by statement."""
    found: list[ast.ImportFrom | ast.Import] = []
    for line in source.splitlines():
        if re.match(r"\s*(from \S+ )?import ", line):
            tree = ast.parse(line.strip())
            found.extend(
                node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
            )
    return found


def documented_imports() -> list[ast.ImportFrom | ast.Import]:
    return [node for block in python_blocks(DOCS) for node in imports_in(block)]


def imported_from(sources: list[str]) -> dict[str, set[str]]:
    """name -> the modules it is imported from, for names imported from microwsgi."""
    where: dict[str, set[str]] = defaultdict(set)
    for source in sources:
        for node in imports_in(source):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("microwsgi"):
                for alias in node.names:
                    where[alias.name].add(node.module or "")
    return where


def test_every_import_in_the_docs_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # `from examples.hello import server`
    statements = documented_imports()
    assert any(isinstance(n, ast.ImportFrom) and n.module == "microwsgi" for n in statements)
    unavailable: list[ImportError] = []  # of a package from an extra not installed here
    for node in statements:
        code = ast.unparse(node)
        try:
            exec(compile(code, "the docs", "exec"), {})  # an ImportError names the statement
        except ImportError as error:
            if tools.missing_extra(error) is None:
                raise
            unavailable.append(error)
    tools.extras_missing("the docs' imports (the others resolve)", unavailable)


def test_each_documented_name_is_imported_one_way_from_the_package() -> None:
    sources = [*python_blocks(DOCS), *(path.read_text() for path in EXAMPLES)]
    where = imported_from(sources)
    assert where, "the docs import nothing from microwsgi"
    for name, modules in where.items():
        home = "microwsgi.server" if name in SERVER_API - {"serve"} else "microwsgi"
        if name in PROTOCOL_API:
            home = "microwsgi.server.protocol"
        assert modules == {home}, f"{name} is imported from {sorted(modules)}"


def test_the_package_exports_exactly_what_the_docs_import_from_it() -> None:
    documented = set(imported_from(python_blocks(DOCS))) - (SERVER_API - {"serve"}) - PROTOCOL_API
    # serve is documented as `microwsgi.serve(app, ...)`, not imported in a snippet.
    assert set(microwsgi.__all__) == documented | {"serve"}
    assert "microwsgi.serve(app, host, port" in DOCS


def framework_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(microwsgi.__path__, "microwsgi.")
        if not info.name.startswith(SERVER_MODULES) and info.name != "microwsgi.__main__"
    ]


@pytest.mark.parametrize("module_name", framework_modules())
def test_module_all_lists_only_names_the_docs_document(module_name: str) -> None:
    module = tools.require_extra(module_name)  # some need an extra (microwsgi.gunicorn)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    for name in exported:
        documented = (f"`{name}", f" {name}(", f".{name}`")  # `microwsgi.workers.Worker`
        assert any(form in DOCS for form in documented), f"{module_name}.{name}"


def github_anchor(heading: str) -> str:
    # GitHub's rule: lower case, punctuation dropped except - and _, spaces to dashes.
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readme_links_lead_to_pages_and_headings_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]+\.md)(?:#([^)]+))?\)", README)
    assert len(links) >= 15
    for target, anchor in links:
        page = ROOT / target
        assert page.is_file(), target
        if anchor:
            headings = re.findall(r"^#{1,4} (.+)$", read(page), re.MULTILINE)
            assert anchor in {github_anchor(h) for h in headings}, f"{target}#{anchor}"


def test_the_readme_is_a_front_page_that_links_every_page() -> None:
    assert len(README.splitlines()) <= 300
    for page in pages()[1:]:
        if page.name != "index.md":
            assert f"](docs/{page.name}" in README or page.name in read("index.md"), page.name


def test_the_two_set_up_commands_come_first_and_ci_runs_the_test_command() -> None:
    first_block = re.search(r"^```bash\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
    assert first_block is not None
    assert README.index(first_block.group(0)) < README.index("## Quick start")
    commands = [line for line in first_block.group(1).splitlines() if line and line[0] != "#"]
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def documentation_files() -> list[Path]:
    return [*pages(), ROOT / "deploy" / "README.md", *EXAMPLES]


def test_curl_lines_that_send_json_say_so() -> None:
    for path in documentation_files():
        text = path.read_text().replace("\\\n", " ")  # a command continued on the next line
        for line in text.splitlines():
            if "curl" in line and re.search(r"-d\s+'[{\[]", line):
                assert "Content-Type: application/json" in line, f"{path.name}: {line.strip()}"


def test_no_internal_issue_numbers_anywhere() -> None:
    pattern = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
    checked = 0
    for folder in ("microwsgi", "benchmarks", "examples", "deploy", "tests", ".ci", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".conf", ".toml", ""}:
                checked += 1
                found = pattern.search(path.read_text(errors="replace"))
                assert found is None, f"{path.relative_to(ROOT)}: {found.group(0)!r}"
    assert pattern.search(README) is None
    assert checked > 50


def test_the_readme_says_where_the_api_comes_from_once() -> None:
    assert README.count("](https://github.com/hasssanezzz/PyMicroHTTP)") == 1
    assert "the seed" not in README.lower()


def test_readme_python_version_matches_pyproject() -> None:
    found = re.search(r'^requires-python = ">=(\S+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    assert f"Python ≥ {found.group(1)}" in README
