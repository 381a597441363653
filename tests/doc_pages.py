"""The documentation as the tests read it: the README, the pages under docs/, their blocks.

Shared by the tests that check what the documentation says (tests/test_docs.py,
tests/test_readme.py, tests/test_docs_routing.py and the pages' own claims elsewhere).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def pages() -> list[Path]:
    """The README and every page under docs/, pages added later included."""
    return [README, *sorted(DOCS.glob("*.md"))]


def read(page: str | Path) -> str:
    """A page's text: ``'routing.md'`` is docs/routing.md; a Path is read as it is."""
    path = page if isinstance(page, Path) else DOCS / page
    return path.read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def section(page: str, title: str) -> str:
    """The part of a page under the heading `title` (any level), up to the next heading of
    the same level or higher."""
    text = read(page)
    found = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert found is not None, f"no heading {title!r} in {page}"
    level = len(found.group(1))
    after = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, found.end())
    return text[found.start() : after.start() if after else len(text)]
