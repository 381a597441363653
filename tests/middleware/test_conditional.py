"""conditional(): ETags from complete bodies, 304 round trips (If-None-Match lists, weak tags,
``*``), If-Modified-Since where the handler set Last-Modified, streams left alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning
from werkzeug.http import generate_etag

from microwsgi import Server, conditional

MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
BEFORE, AFTER = "Tue, 20 Oct 2026 07:28:00 GMT", "Thu, 22 Oct 2026 07:28:00 GMT"


@pytest.fixture
def app() -> webtest.TestApp:
    server = Server()
    server.before_all(conditional())
    state = {"note": "first"}

    @server.get("/note")
    def note(request: dict[str, Any]) -> Any:
        return {"note": state["note"]}

    @server.put("/note")
    def change(request: dict[str, Any]) -> Any:
        state["note"] = request["json"]["note"]
        return {"note": state["note"]}

    @server.get("/tagged")
    def tagged(request: dict[str, Any]) -> Any:
        return "tagged", 200, {"ETag": 'W/"v7"'}

    @server.get("/dated")
    def dated(request: dict[str, Any]) -> Any:
        return "dated", 200, {"Last-Modified": MODIFIED}

    @server.get("/created")
    def created(request: dict[str, Any]) -> Any:
        return {"ok": True}, 201

    @server.get("/stream")
    def stream(request: dict[str, Any]) -> Iterator[str]:
        yield "a"
        yield "b"

    @server.get("/stream-tagged")
    def stream_tagged(request: dict[str, Any]) -> Any:
        return iter(["x", "y"]), 200, {"ETag": '"s1"'}

    return webtest.TestApp(server)


def test_a_complete_body_gets_the_etag_of_its_bytes(app: webtest.TestApp) -> None:
    res = app.get("/note")
    assert res.headers["ETag"] == f'"{generate_etag(res.body)}"'


def test_304_round_trip_and_a_new_etag_after_a_change(app: webtest.TestApp) -> None:
    etag = app.get("/note").headers["ETag"]
    again = app.get("/note", headers={"If-None-Match": etag}, status=304)
    assert again.body == b"" and again.headers["ETag"] == etag
    assert "Content-Type" not in again.headers and "Content-Length" not in again.headers
    app.put_json("/note", {"note": "second"})
    changed = app.get("/note", headers={"If-None-Match": etag})
    assert changed.status_int == 200 and changed.json == {"note": "second"}
    assert changed.headers["ETag"] != etag


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ('"other", {etag}', 304),  # a list: any match
        ('"a", "b"', 200),
        ("W/{etag}", 304),  # weak comparison (RFC 9110 §13.1.2)
        ("*", 304),
        ("", 200),
    ],
)
def test_if_none_match_forms(app: webtest.TestApp, if_none_match: str, status: int) -> None:
    etag = app.get("/note").headers["ETag"]
    res = app.get("/note", headers={"If-None-Match": if_none_match.format(etag=etag)},
                  status=status)  # fmt: skip
    assert (res.body == b"") == (status == 304)


def test_head_gets_the_same_etag_and_its_304(app: webtest.TestApp) -> None:
    etag = app.get("/note").headers["ETag"]
    assert app.head("/note").headers["ETag"] == etag
    app.head("/note", headers={"If-None-Match": etag}, status=304)


def test_the_handlers_etag_is_kept_and_matched(app: webtest.TestApp) -> None:
    assert app.get("/tagged").headers["ETag"] == 'W/"v7"'
    app.get("/tagged", headers={"If-None-Match": '"v7"'}, status=304)


@pytest.mark.parametrize(("since", "status"), [(MODIFIED, 304), (AFTER, 304), (BEFORE, 200)])
def test_if_modified_since_against_last_modified(
    app: webtest.TestApp, since: str, status: int
) -> None:
    app.get("/dated", headers={"If-Modified-Since": since}, status=status)


def test_if_none_match_wins_over_if_modified_since(app: webtest.TestApp) -> None:
    # RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    headers = {"If-Modified-Since": AFTER, "If-None-Match": '"not-this-one"'}
    assert app.get("/dated", headers=headers).status_int == 200


def test_other_statuses_and_verbs_are_left_alone(app: webtest.TestApp) -> None:
    assert "ETag" not in app.get("/created").headers
    assert "ETag" not in app.put_json("/note", {"note": "x"}).headers


def test_streams_get_no_etag_but_keep_their_own(app: webtest.TestApp) -> None:
    res = app.get("/stream")
    assert res.body == b"ab" and "ETag" not in res.headers
    assert app.get("/stream", headers={"If-None-Match": "*"}).status_int == 200
    app.get("/stream-tagged", headers={"If-None-Match": '"s1"'}, status=304)
    assert app.get("/stream-tagged").body == b"xy"
