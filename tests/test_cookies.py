"""set_cookie and delete_cookie: Set-Cookie values on the wire, several per answer, round trips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning
from werkzeug.http import parse_date

from microwsgi import Server
from microwsgi.cookies import delete_cookie, set_cookie


def parse_set_cookie(value: str) -> tuple[str, str, dict[str, str | bool]]:
    """Split a Set-Cookie value per RFC 6265 section 5.2: name=value, then attributes."""
    pair, *parts = value.split("; ")
    name, _, cookie_value = pair.partition("=")
    attributes: dict[str, str | bool] = {}
    for part in parts:
        key, sep, attr = part.partition("=")
        attributes[key.lower()] = attr if sep else True
    return name, cookie_value, attributes


@pytest.fixture
def app() -> webtest.TestApp:
    server = Server()

    @server.register("GET /login")
    def login(request: dict[str, Any]) -> Any:
        return (
            "ok",
            200,
            [
                set_cookie("theme", "dark"),
                set_cookie("sid", "abc123", httponly=True, samesite="Lax"),
                ("X-Other", "kept"),
            ],
        )

    @server.register("GET /logout")
    def logout(request: dict[str, Any]) -> Any:
        return "bye", 200, [delete_cookie("sid")]

    @server.register("GET /whoami")
    def whoami(request: dict[str, Any]) -> Any:
        return dict(request["cookies"])

    @server.register("GET /odd")
    def odd(request: dict[str, Any]) -> Any:
        return "ok", 200, [set_cookie("odd", 'a "quoted"; value, ü\\')]

    return webtest.TestApp(server)


def test_all_attributes() -> None:
    name, header = set_cookie(
        "session",
        "v1",
        max_age=3600,
        path="/app",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    assert name == "Set-Cookie"
    cookie_name, value, attrs = parse_set_cookie(header)
    assert (cookie_name, value) == ("session", "v1")
    assert attrs["max-age"] == "3600"
    expires = parse_date(str(attrs["expires"]))
    assert expires is not None
    now = datetime.now(timezone.utc)
    assert timedelta(minutes=59) < expires - now <= timedelta(hours=1, seconds=1)
    assert attrs["path"] == "/app"
    assert attrs["domain"] == "example.com"
    assert attrs["secure"] is True
    assert attrs["httponly"] is True
    assert attrs["samesite"] == "Strict"


def test_defaults_make_a_session_cookie_for_the_whole_site() -> None:
    _, header = set_cookie("a", "1")
    assert parse_set_cookie(header) == ("a", "1", {"path": "/"})


def test_max_age_as_timedelta_and_expires_as_datetime() -> None:
    _, header = set_cookie("a", max_age=timedelta(days=1))
    assert parse_set_cookie(header)[2]["max-age"] == "86400"
    moment = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    _, header = set_cookie("a", expires=moment)
    attrs = parse_set_cookie(header)[2]
    assert attrs["expires"] == "Tue, 06 May 2031 07:08:09 GMT"
    assert "max-age" not in attrs


def test_samesite_none_and_partitioned_need_secure() -> None:
    with pytest.raises(ValueError, match="secure"):
        set_cookie("a", samesite="None")
    with pytest.raises(ValueError, match="secure"):
        set_cookie("a", partitioned=True)
    attrs = parse_set_cookie(set_cookie("a", samesite="none", secure=True, partitioned=True)[1])[2]
    assert attrs["samesite"] == "None"
    assert attrs["partitioned"] is True


@pytest.mark.parametrize("name", ["", "a b", "a;b", "a=b", "ä", "a\r\nSet-Cookie: x"])
def test_bad_names_fail_early(name: str) -> None:
    with pytest.raises(ValueError, match="token"):
        set_cookie(name, "1")


def test_bad_samesite_fails_early() -> None:
    with pytest.raises(ValueError, match="samesite"):
        set_cookie("a", samesite="sometimes")  # type: ignore[arg-type]


def test_several_per_response(app: webtest.TestApp) -> None:
    res = app.get("/login")
    headers = res.headers.getall("Set-Cookie")
    parsed = {name: (value, attrs) for name, value, attrs in map(parse_set_cookie, headers)}
    assert parsed == {
        "theme": ("dark", {"path": "/"}),
        "sid": ("abc123", {"path": "/", "httponly": True, "samesite": "Lax"}),
    }
    assert res.headers["X-Other"] == "kept"


def test_round_trip_through_the_client(app: webtest.TestApp) -> None:
    app.get("/login")
    assert app.get("/whoami").json == {"theme": "dark", "sid": "abc123"}


def test_delete_cookie(app: webtest.TestApp) -> None:
    app.get("/login")
    res = app.get("/logout")
    name, value, attrs = parse_set_cookie(res.headers["Set-Cookie"])
    assert (name, value) == ("sid", "")
    assert attrs["max-age"] == "0"
    assert attrs["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert attrs["path"] == "/"
    assert app.get("/whoami").json == {"theme": "dark"}


def test_delete_cookie_keeps_path_and_domain() -> None:
    attrs = parse_set_cookie(delete_cookie("a", path="/app", domain="example.com")[1])[2]
    assert attrs["path"] == "/app"
    assert attrs["domain"] == "example.com"


def test_values_needing_quotes_round_trip(app: webtest.TestApp) -> None:
    header = app.get("/odd").headers["Set-Cookie"]
    assert ";" not in header.split("; ")[0]  # the value cannot end the pair early
    assert app.get("/whoami").json == {"odd": 'a "quoted"; value, ü\\'}
