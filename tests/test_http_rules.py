"""Tests for microwsgi._http: the HTTP rules the framework and the server share."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import microwsgi._http
from microwsgi._http import (
    TOKEN_RE,
    parse_content_length,
    reason_phrase,
    status_line,
)


@pytest.mark.parametrize(
    ("status", "phrase"), [(200, "OK"), (404, "Not Found"), (418, "I'm a Teapot"), (299, "Unknown")]
)
def test_reason_phrase_and_status_line(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase
    assert status_line(status) == f"{status} {phrase}"


@pytest.mark.parametrize(
    ("value", "length"),
    [("0", 0), ("007", 7), ("123456789012345678", 123456789012345678)],
)
def test_content_length_is_ascii_digits(value: str, length: int) -> None:
    assert parse_content_length(value) == length


@pytest.mark.parametrize(
    "value",
    ["", " 5", "5 ", "+5", "-5", "5, 5", "0x10", "1e3", "\u0663", "\u00b2", "1234567890123456789"],
)
def test_anything_else_is_not_a_content_length(value: str) -> None:
    assert parse_content_length(value) is None


def test_token_grammar() -> None:
    for good in ("GET", "M-SEARCH", "x!#$%&'*+-.^_`|~9"):
        assert TOKEN_RE.fullmatch(good)
    for bad in ("", "a b", "a:b", "a(b", "a\tb", "caf\u00e9", "a\x7fb"):
        assert not TOKEN_RE.fullmatch(bad)


def test_the_rules_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(microwsgi._http.__file__).read_text("utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import"
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
