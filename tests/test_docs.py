"""The documentation runs: every Python block of the README and of each page under docs/, and
the site itself, built by MkDocs in strict mode (a broken link or a page missing from the nav
fails).

A page's blocks run in order in one namespace, as a reader pasting them one after the other
would run them, in a fresh working directory, with the repository on the import path (so
``from examples.hello import server`` works) and ``__name__`` not ``"__main__"`` (so
``if __name__ == "__main__": server.start_server()`` stays a line to read). A function a page
defines named ``test_...`` is called, as pytest would. Pages added later are run the same way,
without touching this file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tools
from doc_pages import DOCS, README, ROOT, pages, python_blocks, read


@pytest.mark.parametrize("page", pages(), ids=lambda path: path.name)
def test_every_python_block_of_the_page_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(read(page))
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    # A block that needs an extra not installed here skips the page from that block on (the
    # blocks after it build on it); only an ImportError that names the extra does.
    for number, block in enumerate(blocks, 1):
        where = f"{page.name}, Python block {number}"
        with tools.extras_may_be_missing(where):
            exec(compile(block, where, "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            with tools.extras_may_be_missing(f"{page.name}'s {name}"):
                value()


def test_every_page_has_a_python_block_or_none_is_needed() -> None:
    # The runner above would pass vacuously on a page whose blocks it cannot find (a fence
    # written ``` python, say): every page that shows Python shows it as a ```python block.
    for page in pages():
        text = read(page)
        assert "``` python" not in text and "```py\n" not in text, page.name


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    tools.require_extra("mkdocs")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    # mkdocs --strict refuses a page missing from the nav; this names it without a build.
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f" {page.name}\n" in config, f"{page.name} is not in mkdocs.yml's nav"
    assert README.is_file()
