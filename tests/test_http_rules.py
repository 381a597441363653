"""Tests for microwsgi._http: the HTTP rules the framework and the server share."""

from __future__ import annotations

import ast
import sys
from http import HTTPStatus
from pathlib import Path

import pytest

import microwsgi._http
from microwsgi._http import (
    TOKEN_RE,
    check_status_line,
    is_error_status,
    parse_content_length,
    reason_phrase,
    status_code,
    status_line,
    valid_field_name,
    valid_field_value,
)


@pytest.mark.parametrize(
    ("status", "phrase"), [(200, "OK"), (404, "Not Found"), (418, "I'm a Teapot"), (299, "Unknown")]
)
def test_reason_phrase_and_status_line(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase
    assert status_line(status) == f"{status} {phrase}"


@pytest.mark.parametrize(
    ("value", "length"),
    [
        ("0", 0),
        ("007", 7),
        ("123456789012345678", 123456789012345678),
        ("0" * 19, 0),  # leading zeros do not count toward the 18-digit cap
        ("0" * 5000 + "42", 42),  # nor reach int(), which refuses over 4,300 digits
        ("0123456789012345678", 123456789012345678),
    ],
)
def test_content_length_is_ascii_digits(value: str, length: int) -> None:
    assert parse_content_length(value) == length


@pytest.mark.parametrize(
    "value",
    [
        *("", " 5", "5 ", "+5", "-5", "5, 5", "0x10", "1e3", "\u0663", "\u00b2"),
        *("1234567890123456789", "001234567890123456789"),  # 19 significant digits
    ],
)
def test_anything_else_is_not_a_content_length(value: str) -> None:
    assert parse_content_length(value) is None


def test_token_grammar() -> None:
    for good in ("GET", "M-SEARCH", "x!#$%&'*+-.^_`|~9"):
        assert TOKEN_RE.fullmatch(good)
    for bad in ("", "a b", "a:b", "a(b", "a\tb", "caf\u00e9", "a\x7fb"):
        assert not TOKEN_RE.fullmatch(bad)


def test_a_handlers_status_is_an_int_from_100_to_599() -> None:
    assert status_code(100) == 100 and status_code(599) == 599
    assert status_code(HTTPStatus.CREATED) == 201 and type(status_code(HTTPStatus.OK)) is int
    for wrong, message in ((99, "outside"), (600, "outside"), ("200", "int"), (200.0, "int")):
        with pytest.raises(ValueError, match=message):
            status_code(wrong)
    with pytest.raises(ValueError, match="must be an int, got True"):
        status_code(True)  # a bool is an int to Python, never a status


def test_an_error_status_is_400_to_599() -> None:
    assert is_error_status(400) and is_error_status(599) and is_error_status(HTTPStatus.NOT_FOUND)
    for other in (399, 600, 200, "404", 404.0, None):
        assert not is_error_status(other)


def test_a_wsgi_status_line_is_three_digits_then_the_reason() -> None:
    assert check_status_line("200 OK") == (200, "OK")
    assert check_status_line("299 Whatever it says") == (299, "Whatever it says")
    assert check_status_line("200 ") == (200, "")  # RFC 9112 §4: the reason may be empty
    assert check_status_line("103 Early Hints") == (103, "Early Hints")  # the engine says no
    for wrong in ("", "200", "OK 200", "2x0 OK", b"200 OK", 200, None, "2000", " 200 OK"):
        with pytest.raises(ValueError, match="three digits, a space, the reason"):
            check_status_line(wrong)
    for not_ascii in ("\u00b200 OK", "\u0662\u0660\u0660 OK", "\uff12\uff10\uff10 OK", "200\tOK"):
        with pytest.raises(ValueError, match="three digits, a space, the reason"):
            check_status_line(not_ascii)


def test_a_wsgi_status_code_is_from_100_to_599() -> None:
    assert check_status_line("100 Continue")[0] == 100
    assert check_status_line("599 Last")[0] == 599
    for outside in ("099 Low", "000 Zero", "600 High", "999 Odd"):
        with pytest.raises(ValueError, match=r"is outside 100\.\.599"):
            check_status_line(outside)


def test_a_response_field_name_is_a_token() -> None:
    for good in ("Content-Type", "X-Request-ID", "x!#$%&'*+-.^_`|~9"):
        assert valid_field_name(good)
    for bad in ("", "Bad Name", "X:Y", "X(Y)", "X\x00", "X\r\nY", "Caf\u00e9", " X"):
        assert not valid_field_name(bad)


def test_a_response_field_value_has_no_cr_lf_or_nul() -> None:
    for good in ("", "text/plain; charset=utf-8", "a\tb", "caf\u00e9", "a\x7fb"):
        assert valid_field_value(good)
    for bad in ("a\rb", "a\nb", "a\x00b", "a\r\nInjected: 1"):
        assert not valid_field_value(bad)


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
