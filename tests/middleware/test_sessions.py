"""sessions(...): request['session'] kept in a signed cookie, sent back only when it changed,
and Vary: Cookie on every answer that read or changed it."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import string
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tools
import webtest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from werkzeug.http import parse_cookie

from microwsgi import Server, make_response, render, sessions
from microwsgi.middleware.sessions import MAX_COOKIE_SIZE, Session

SECRET = "s3cret-" * 6
OLD_SECRET = "old-secret-" * 4


def session_app(*middleware_args: Any, trusted_proxies: int = 0, **options: Any) -> webtest.TestApp:
    """An app whose routes read and change the session as the query says."""
    server = Server(trusted_proxies=trusted_proxies)
    mw = sessions(*(middleware_args or (SECRET,)), **options)

    @server.get("/read", mw)
    def read(request: dict[str, Any]) -> Any:
        return {
            "session": dict(request["session"]),
            "is_dict": isinstance(request["session"], dict),
        }

    @server.get("/set", mw)
    def set_values(request: dict[str, Any]) -> Any:
        for key, value in request["query"].items():
            request["session"][key] = value
        return dict(request["session"])

    @server.get("/clear", mw)
    def clear(request: dict[str, Any]) -> Any:
        request["session"].clear()
        return "cleared"

    @server.get("/pop/:key", mw)
    def pop(request: dict[str, Any]) -> Any:
        request["session"].pop(request["params"]["key"], None)
        return dict(request["session"])

    @server.get("/json", mw)
    def json_values(request: dict[str, Any]) -> Any:
        request["session"].update(
            nested={"a": [1, 2.5, True, None]}, text="héllo ✓", number=7, flag=False
        )
        return "ok"

    @server.get("/append", mw)
    def append(request: dict[str, Any]) -> Any:
        request["session"].setdefault("items", [])
        request["session"]["items"].append(len(request["session"]["items"]))
        request["session"].modified = request["query"].get("mark") == "1"
        return dict(request["session"])

    @server.get("/no-session")
    def no_session(request: dict[str, Any]) -> Any:
        return {"in": "session" in request, "get": request.get("session")}

    @server.get("/needs-session")
    def needs_session(request: dict[str, Any]) -> Any:
        return dict(request["session"])

    return webtest.TestApp(server)


def set_cookies(response: webtest.TestResponse) -> list[str]:
    return response.headers.getall("Set-Cookie")


def cookie_value(response: webtest.TestResponse, name: str = "session") -> str:
    (header,) = set_cookies(response)
    return parse_cookie(header)[name]


def signer(secret: str | list[str] = SECRET, **options: Any) -> URLSafeTimedSerializer:
    """A serializer signing as the middleware does, to make cookies the test controls."""
    keys = list(reversed(secret)) if isinstance(secret, list) else secret
    return URLSafeTimedSerializer(
        keys,
        salt="microwsgi.session",
        signer_kwargs={"digest_method": hashlib.sha256},
        **options,
    )


def test_a_session_written_is_read_back_on_the_next_request() -> None:
    app = session_app()
    first = app.get("/set?user=ada")
    header = set_cookies(first)[0]
    assert header.startswith("session=")
    for attribute in ("HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=1209600"):
        assert attribute in header
    assert "Secure" not in header  # plain http
    answer = app.get("/read")
    assert answer.json == {"session": {"user": "ada"}, "is_dict": True}


def test_json_values_come_back_as_they_were_stored() -> None:
    app = session_app()
    app.get("/json")
    assert app.get("/read").json["session"] == {
        "nested": {"a": [1, 2.5, True, None]},
        "text": "héllo ✓",
        "number": 7,
        "flag": False,
    }


def test_a_session_read_and_left_unchanged_sends_no_cookie() -> None:
    app = session_app()
    app.get("/set?user=ada")
    assert set_cookies(app.get("/read")) == []
    assert set_cookies(app.get("/pop/absent")) == []  # pop of a missing key changes nothing
    assert set_cookies(session_app().get("/read")) == []  # no cookie, nothing read, none sent


def test_any_change_sends_the_cookie_again() -> None:
    app = session_app()
    first = cookie_value(app.get("/set?user=ada"))
    second = app.get("/set?theme=dark")
    assert cookie_value(second) != first
    assert app.get("/read").json["session"] == {"user": "ada", "theme": "dark"}


def test_a_session_emptied_by_the_request_deletes_the_cookie() -> None:
    app = session_app()
    app.get("/set?user=ada")
    cleared = app.get("/clear")
    (header,) = set_cookies(cleared)
    assert header.startswith("session=;") or header.startswith('session="";')
    assert "Max-Age=0" in header
    assert app.get("/read").json["session"] == {}

    app.get("/set?user=ada")
    (header,) = set_cookies(app.get("/pop/user"))
    assert "Max-Age=0" in header


def test_emptying_a_session_that_had_no_cookie_sends_nothing() -> None:
    app = session_app()
    assert set_cookies(app.get("/clear")) == []


def test_a_change_inside_a_value_needs_modified_set() -> None:
    app = session_app()
    app.get("/append?mark=1")
    assert app.get("/read").json["session"] == {"items": [0]}
    # setdefault of an existing key and an append inside it: not seen without `modified`.
    assert set_cookies(app.get("/append")) == []
    assert app.get("/read").json["session"] == {"items": [0]}
    app.get("/append?mark=1")
    assert app.get("/read").json["session"] == {"items": [0, 1]}


def test_the_session_is_a_dict_that_notes_every_kind_of_change() -> None:
    changes = [
        lambda s: s.__setitem__("k", 1),
        lambda s: s.__delitem__("a"),
        lambda s: s.clear(),
        lambda s: s.pop("a"),
        lambda s: s.popitem(),
        lambda s: s.setdefault("new", 1),
        lambda s: s.update(b=2),
        lambda s: s.__ior__({"c": 3}),
    ]
    for change in changes:
        session = Session({"a": 1})
        assert not session.modified
        change(session)
        assert session.modified
    untouched = Session({"a": 1})
    untouched.get("a"), untouched.setdefault("a", 2), untouched.pop("zz", None)
    assert not untouched.modified


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "",
        "a.b.c",
        "eyJ1c2VyIjoiYWRhIn0",  # JSON payload without a signature
    ],
)
def test_a_cookie_that_does_not_verify_reads_as_empty_and_the_handler_runs(cookie: str) -> None:
    app = session_app()
    app.set_cookie("session", cookie)
    answer = app.get("/read")
    assert answer.status_int == 200
    assert answer.json["session"] == {}


def test_a_tampered_or_truncated_cookie_reads_as_empty() -> None:
    app = session_app()
    good = cookie_value(app.get("/set?user=ada"))
    payload, timestamp, signature = good.split(".")
    forged_payload = signer("attacker's key").dumps({"user": "admin"}).split(".")[0]
    for bad in (
        f"{forged_payload}.{timestamp}.{signature}",  # payload changed
        # The first character: the last one of an unpadded base64 signature carries padding
        # bits that decoders ignore, so changing it may leave the signature as it was.
        f"{payload}.{timestamp}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",
        good[: len(good) // 2],  # truncated
        good[:-1],
    ):
        app.reset()
        app.set_cookie("session", bad)
        assert app.get("/read").json["session"] == {}, bad


def test_a_cookie_signed_with_an_unknown_key_reads_as_empty() -> None:
    app = session_app()
    app.set_cookie("session", signer("some other secret" * 3).dumps({"user": "ada"}))
    assert app.get("/read").json["session"] == {}


def test_a_signed_payload_that_is_not_a_json_object_reads_as_empty() -> None:
    class NotJSON:
        @staticmethod
        def dumps(value: Any) -> str:
            return "{not json"

        @staticmethod
        def loads(text: str) -> Any:  # pragma: no cover - never read back here
            raise AssertionError

    app = session_app()
    app.set_cookie("session", signer(serializer=NotJSON).dumps({}))
    assert app.get("/read").json["session"] == {}
    app.set_cookie("session", signer().dumps(["a", "list"]))
    assert app.get("/read").json["session"] == {}
    app.set_cookie("session", signer().dumps({"user": "ada"}))  # the control: this one reads
    assert app.get("/read").json["session"] == {"user": "ada"}


class SignedAt(TimestampSigner):
    """A signer whose clock reads `at` (seconds since the epoch)."""

    at = 0

    def get_timestamp(self) -> int:
        return self.at


def cookie_signed_ago(seconds: int, data: dict[str, Any]) -> str:
    SignedAt.at = int(time.time()) - seconds
    return signer(signer=SignedAt).dumps(data)


@pytest.mark.parametrize("max_age", [3600, timedelta(hours=1)])
def test_a_cookie_older_than_max_age_reads_as_empty(max_age: int | timedelta) -> None:
    app = session_app(SECRET, max_age=max_age)
    app.set_cookie("session", cookie_signed_ago(3600 - 60, {"user": "ada"}))
    assert app.get("/read").json["session"] == {"user": "ada"}
    app.set_cookie("session", cookie_signed_ago(3600 + 60, {"user": "ada"}))
    assert app.get("/read").json["session"] == {}
    assert "Max-Age=3600" in set_cookies(app.get("/set?user=ada"))[0]


def test_key_rotation_the_first_secret_signs_and_every_one_verifies() -> None:
    old_app = session_app(OLD_SECRET)
    old_cookie = cookie_value(old_app.get("/set?user=ada"))

    rotated = session_app([SECRET, OLD_SECRET])
    rotated.set_cookie("session", old_cookie)
    assert rotated.get("/read").json["session"] == {"user": "ada"}  # the old key still verifies
    new_cookie = cookie_value(rotated.get("/set?theme=dark"))

    new_only = session_app((SECRET,))  # a tuple works as a list does
    new_only.set_cookie("session", new_cookie)
    assert new_only.get("/read").json["session"] == {"user": "ada", "theme": "dark"}
    old_app.reset()
    old_app.set_cookie("session", new_cookie)  # signed with the new key, unknown to the old app
    assert old_app.get("/read").json["session"] == {}


def test_secure_follows_the_request_scheme_unless_given() -> None:
    app = session_app()
    https = app.get("/set?a=1", extra_environ={"wsgi.url_scheme": "https"})
    assert "; Secure" in set_cookies(https)[0]
    assert "Secure" not in set_cookies(app.get("/set?a=2"))[0]

    proxied = session_app(trusted_proxies=1)
    behind_tls = proxied.get("/set?a=1", headers={"X-Forwarded-Proto": "https"})
    assert "; Secure" in set_cookies(behind_tls)[0]
    spoofed = session_app().get("/set?a=1", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in set_cookies(spoofed)[0]  # no trusted proxy: the header is ignored

    assert "; Secure" in set_cookies(session_app(SECRET, secure=True).get("/set?a=1"))[0]
    forced_off = session_app(SECRET, secure=False).get(
        "/set?a=1", extra_environ={"wsgi.url_scheme": "https"}
    )
    assert "Secure" not in set_cookies(forced_off)[0]


def test_cookie_settings_are_applied() -> None:
    app = session_app(
        SECRET,
        cookie="sid",
        path="/app",
        domain="example.test",
        httponly=False,
        samesite="Strict",
        max_age=60,
    )
    (header,) = set_cookies(app.get("/set?a=1"))
    assert header.startswith("sid=")
    for attribute in ("Path=/app", "Domain=example.test", "SameSite=Strict", "Max-Age=60"):
        assert attribute in header
    assert "HttpOnly" not in header


def test_a_value_json_cannot_hold_is_a_logged_500_naming_the_route_and_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server()

    @server.get("/bad/:kind", sessions(SECRET))
    def bad(request: dict[str, Any]) -> Any:
        values = {"set": {1, 2}, "object": object(), "nan": float("nan")}
        request["session"]["fine"] = 1
        request["session"]["oops"] = values[request["params"]["kind"]]
        return "stored"

    app = webtest.TestApp(server)
    for kind in ("set", "object", "nan"):
        caplog.clear()
        answer = app.get(f"/bad/{kind}", status=500)
        assert answer.json == {
            "status": 500,
            "error": "Internal Server Error",
            "message": "Internal Server Error",
        }
        assert set_cookies(answer) == []
        logged = caplog.text
        assert "bad (GET /bad/:kind)" in logged
        assert "session key 'oops' cannot be stored in the cookie" in logged


def incompressible(length: int) -> str:
    rng = random.Random(length)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def test_a_cookie_past_4093_bytes_is_a_logged_500_naming_the_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server()
    mw = sessions(SECRET, cookie="s")

    @server.get("/big/:n<int>", mw)
    def big(request: dict[str, Any]) -> Any:
        request["session"]["blob"] = incompressible(request["params"]["n"])
        return "stored"

    app = webtest.TestApp(server)
    fits, refused = [], []
    for n in range(3860, 3920):  # around the value length whose Set-Cookie is 4093 bytes
        caplog.clear()
        answer = app.get(f"/big/{n}", expect_errors=True)
        if answer.status_int == 200:
            fits.append(len(answer.headers["Set-Cookie"]))
        else:
            assert answer.status_int == 500
            said = re.search(r"the session cookie would be (\d+) bytes", caplog.text)
            assert said is not None, caplog.text
            refused.append(int(said.group(1)))
    assert fits and refused
    assert max(fits) <= MAX_COOKIE_SIZE < min(refused)
    assert max(fits) >= MAX_COOKIE_SIZE - 3  # the limit is 4093, not some smaller size
    assert f"over the {MAX_COOKIE_SIZE} browsers keep" in caplog.text
    assert "big (GET /big/:n<int>)" in caplog.text
    assert "keys: 'blob'" in caplog.text


def test_a_route_without_the_middleware_has_no_session() -> None:
    app = session_app()
    assert app.get("/no-session").json == {"in": False, "get": None}
    assert app.get("/needs-session", status=500).json["status"] == 500


@pytest.mark.parametrize("secret", ["", b"", [], (), ["", "other"], [SECRET, b""]])
def test_an_empty_secret_is_refused_at_the_call(secret: Any) -> None:
    with pytest.raises(ValueError, match="secret"):
        sessions(secret)


@pytest.mark.parametrize("secret", [None, 42, {"a"}, [SECRET, 3]])
def test_a_secret_of_another_type_is_refused_at_the_call(secret: Any) -> None:
    with pytest.raises(TypeError, match="secret must be"):
        sessions(secret)


def test_a_short_secret_is_accepted_and_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "microwsgi"):
        app = session_app("short")
    assert "secret is 5 bytes long" in caplog.text
    app.get("/set?a=1")
    assert app.get("/read").json["session"] == {"a": "1"}
    caplog.clear()
    sessions(SECRET)
    sessions(b"\x00" * 32)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_age": 0}, "max_age must be a positive"),
        ({"max_age": -5}, "max_age must be a positive"),
        ({"max_age": timedelta(0)}, "max_age must be a positive"),
        ({"max_age": "60"}, "max_age must be a positive"),
        ({"cookie": "bad name"}, "cookie name must be an HTTP token"),
        ({"samesite": "sometimes"}, "samesite must be"),
        ({"samesite": "None"}, "requires secure=True"),
    ],
)
def test_bad_settings_are_refused_at_the_call(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sessions(SECRET, **options)


def test_samesite_none_is_accepted_with_secure() -> None:
    app = session_app(SECRET, samesite="None", secure=True)
    assert "SameSite=None" in set_cookies(app.get("/set?a=1"))[0]


def test_an_error_answer_still_saves_the_session() -> None:
    server = Server()

    @server.get("/fail", sessions(SECRET))
    def fail(request: dict[str, Any]) -> Any:
        request["session"]["tried"] = True
        return {"error": "nope"}, 400

    app = webtest.TestApp(server)
    answer = app.get("/fail", status=400)
    assert answer.json == {"error": "nope"}
    assert len(set_cookies(answer)) == 1


def varies(response: webtest.TestResponse) -> list[str]:
    """The Vary header's field names, as sent (a list, so that a duplicate shows)."""
    return [name.strip() for name in response.headers.get("Vary", "").split(",") if name.strip()]


def test_an_answer_that_read_the_session_says_vary_cookie() -> None:
    app = session_app()
    # Read with no cookie yet: the anonymous page depends on the cookie's absence too.
    assert varies(app.get("/read")) == ["Cookie"]
    app.get("/set?user=ada")
    read = app.get("/read")
    assert varies(read) == ["Cookie"]
    assert set_cookies(read) == []  # only read: nothing to store


def test_an_answer_that_changed_the_session_says_vary_cookie() -> None:
    app = session_app()
    changed = app.get("/set?user=ada")
    assert varies(changed) == ["Cookie"]
    assert len(set_cookies(changed)) == 1
    deleted = app.get("/clear")
    assert varies(deleted) == ["Cookie"]
    assert "Max-Age=0" in set_cookies(deleted)[0]
    # Emptied with no cookie to delete: no Set-Cookie, but the answer still read the session.
    assert varies(session_app().get("/clear")) == ["Cookie"]


def test_a_route_that_never_touches_the_session_stays_cacheable() -> None:
    server = Server()

    @server.get("/page", sessions(SECRET))
    def page(request: dict[str, Any]) -> Any:
        return "the same for everyone"

    @server.get("/login", sessions(SECRET))
    def login(request: dict[str, Any]) -> Any:
        request["session"]["user"] = "ada"
        return "in"

    app = webtest.TestApp(server)
    app.get("/login")  # the next request carries a valid session cookie
    assert "session" in app.cookies
    answer = app.get("/page")
    assert "Vary" not in answer.headers
    assert set_cookies(answer) == []


def test_vary_cookie_is_merged_into_the_vary_the_answer_has() -> None:
    server = Server()
    mw = sessions(SECRET)

    @server.get("/tuple", mw)
    def with_tuple(request: dict[str, Any]) -> Any:
        return request["session"].get("user", "anonymous"), 200, {"Vary": "Accept-Language"}

    @server.get("/response", mw)
    def response(request: dict[str, Any]) -> Any:
        request["session"]["user"] = "ada"
        answer = make_response("hi", request)
        answer.headers["Vary"] = "Origin, cookie"
        return answer

    @server.get("/lines", mw)
    def two_vary_lines(request: dict[str, Any]) -> Any:
        vary = [("Vary", "Accept-Language"), ("Vary", "Origin")]
        return request["session"].get("user", "anonymous"), 200, vary

    app = webtest.TestApp(server)
    assert varies(app.get("/tuple")) == ["Accept-Language", "Cookie"]
    # Every Vary line is kept (read as one list, RFC 9110 §5.3), not only the first.
    assert varies(app.get("/lines")) == ["Accept-Language", "Origin", "Cookie"]
    changed = app.get("/response")
    assert varies(changed) == ["Origin", "cookie"]  # already there, in any case: not twice
    assert len(set_cookies(changed)) == 1


def test_a_template_that_reads_the_session_says_vary_cookie(tmp_path: Path) -> None:
    tools.require_extra("jinja2")
    (tmp_path / "user.html").write_text("{{ session.get('user', 'guest') }}")
    (tmp_path / "plain.html").write_text("the same for everyone")
    server = Server()
    server.templates(tmp_path)
    mw = sessions(SECRET)

    @server.get("/user", mw)
    def user(request: dict[str, Any]) -> Any:
        return render("user.html")  # the handler itself never looks at the session

    @server.get("/plain", mw)
    def plain(request: dict[str, Any]) -> Any:
        return render("plain.html"), 200

    app = webtest.TestApp(server)
    assert app.get("/user").text == "guest"
    assert varies(app.get("/user")) == ["Cookie"]
    assert "Vary" not in app.get("/plain").headers


def test_the_session_notes_every_kind_of_read() -> None:
    reads = [
        lambda s: s["a"],
        lambda s: s.get("a"),
        lambda s: "a" in s,
        lambda s: len(s),
        lambda s: bool(s),
        lambda s: list(s),
        lambda s: list(reversed(s)),
        lambda s: s.keys(),
        lambda s: s.values(),
        lambda s: s.items(),
        lambda s: s.copy(),
        lambda s: dict(s),
        lambda s: {**s},
        lambda s: s == {"a": 1},
        lambda s: s != {"a": 1},
        lambda s: s | {"b": 2},
        lambda s: repr(s),
        lambda s: json.dumps(s),
        lambda s: s.setdefault("a", 2),
        lambda s: s.pop("zz", None),
    ]
    for read in reads:
        session = Session({"a": 1})
        assert not session.accessed
        read(session)
        assert session.accessed and not session.modified
    changed = Session()
    changed["k"] = 1
    assert changed.accessed and changed.modified
    with pytest.raises(TypeError):
        hash(Session())
