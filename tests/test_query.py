"""`request['query']`: QueryDict and parse_query, on their own."""

from __future__ import annotations

import pytest

from microwsgi.query import QueryDict, parse_query


@pytest.mark.parametrize("raw", ["tag=a&tag=b&tag=c&n=1", "tag=a&tag=b&tag=%63&n=1"])
def test_repeated_keys_keep_every_value_in_order(raw: str) -> None:
    query = parse_query(raw)  # the second form takes the decoding path
    assert query["tag"] == "a"
    assert query.get("tag") == "a"
    assert query.getlist("tag") == ["a", "b", "c"]
    assert query.getlist("n") == ["1"]
    assert query.getlist("missing") == []
    assert dict(query) == {"tag": "a", "n": "1"}


def test_getlist_returns_a_copy() -> None:
    query = parse_query("a=1&a=2")
    query.getlist("a").append("3")
    assert query.getlist("a") == ["1", "2"]


def test_values_are_percent_decoded_as_utf8_with_plus_as_space() -> None:
    query = parse_query("name=caf%C3%A9&q=a+b&bad=%FF")
    assert query == {"name": "café", "q": "a b", "bad": "\ufffd"}


def test_raw_latin1_query_string_is_read_as_utf8() -> None:
    # PEP 3333: QUERY_STRING carries the raw bytes decoded as latin-1.
    assert parse_query("name=café".encode().decode("latin-1")) == {"name": "café"}


def test_blank_values_and_empty_pairs() -> None:
    assert parse_query("a=&b&&c=1") == {"a": "", "b": "", "c": "1"}
    assert parse_query("") == {}


def test_repr_shows_every_pair() -> None:
    assert repr(parse_query("a=1&a=2&b=3")) == "QueryDict([('a', '1'), ('a', '2'), ('b', '3')])"
    assert isinstance(parse_query("a=1"), dict)
    assert repr(QueryDict()) == "QueryDict([])"
