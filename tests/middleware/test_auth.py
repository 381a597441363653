"""basic_auth(check) and bearer_auth(verify): request['user'] from Authorization, and a 401
with the scheme's challenge for every missing, malformed or refused credential, never a 500."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import webtest

from microwsgi import Server, basic_auth, bearer_auth, cors

BASIC_CHALLENGE = 'Basic realm="microwsgi", charset="UTF-8"'


def basic(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return "Basic " + base64.b64encode(raw).decode()


def auth_app(middleware: Any) -> tuple[webtest.TestApp, list[tuple[Any, ...]]]:
    """An app whose /me route is behind `middleware`; the list records each check's arguments."""
    server = Server()

    @server.get("/me", middleware)
    def me(request: dict[str, Any]) -> Any:
        return {"user": request["user"]}

    return webtest.TestApp(server), []


def basic_app(realm: str | None = None) -> tuple[webtest.TestApp, list[tuple[Any, ...]]]:
    calls: list[tuple[Any, ...]] = []
    users = {"Aladdin": "open sesame", "test": "123£", "José": "contraseña", "ada": ""}

    def check(username: str, password: str) -> Any:
        calls.append((username, password))
        return {"name": username} if users.get(username) == password else None

    options = {} if realm is None else {"realm": realm}
    app, _ = auth_app(basic_auth(check, **options))
    return app, calls


def test_basic_rfc_7617_example_signs_in() -> None:
    app, calls = basic_app()
    # RFC 7617 §2: user "Aladdin", password "open sesame".
    assert basic("Aladdin:open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    answer = app.get("/me", headers={"Authorization": "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="})
    assert answer.json == {"user": {"name": "Aladdin"}}
    assert calls == [("Aladdin", "open sesame")]


def test_basic_utf8_user_names_and_passwords() -> None:
    app, calls = basic_app()
    # RFC 7617 §2.1: user "test", password "123£" in UTF-8.
    assert basic("test:123£") == "Basic dGVzdDoxMjPCow=="
    assert app.get("/me", headers={"Authorization": "Basic dGVzdDoxMjPCow=="}).json == {
        "user": {"name": "test"}
    }
    assert app.get("/me", headers={"Authorization": basic("José:contraseña")}).json == {
        "user": {"name": "José"}
    }
    assert calls == [("test", "123£"), ("José", "contraseña")]


def test_basic_scheme_is_case_insensitive_and_the_password_may_hold_colons_or_be_empty() -> None:
    app, calls = basic_app()
    assert app.get("/me", headers={"Authorization": "bAsIc " + basic("ada:")[6:]}).status_int == 200
    app.get("/me", headers={"Authorization": basic("ada:pa:ss")}, status=401)
    assert calls == [("ada", ""), ("ada", "pa:ss")]


def assert_basic_refusal(answer: webtest.TestResponse, message: str) -> None:
    assert answer.status_int == 401
    assert answer.headers["WWW-Authenticate"] == BASIC_CHALLENGE
    assert answer.json["status"] == 401
    assert answer.json["error"] == "Unauthorized"
    assert message in answer.json["message"]


def test_basic_missing_credentials_get_the_challenge() -> None:
    app, calls = basic_app()
    assert_basic_refusal(app.get("/me", status=401), "authentication required")
    assert_basic_refusal(
        app.get("/me", headers={"Authorization": ""}, status=401), "authentication required"
    )
    assert calls == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic !!!not-base64!!!", "malformed"),
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", "malformed"),  # padding cut off
        ("Basic QWxh ZGRpbjpvcGVuIHNlc2FtZQ==", "malformed"),  # a space inside
        (basic("Aladdin"), "malformed"),  # no colon
        ("Basic", "malformed"),
        ("Basic ", "malformed"),
        (basic(b"\xff\xfe:\xfd"), "malformed"),  # not UTF-8
        (basic("Ala\x01ddin:open sesame"), "control characters"),
        (basic("Aladdin:open\nsesame"), "control characters"),
        ("Bearer abc.def", "'bearer' scheme"),
        ("Digest username=Aladdin", "'digest' scheme"),
        ("Aladdin:open sesame", "scheme"),
    ],
)
def test_basic_malformed_or_foreign_credentials_are_a_401_never_a_500(
    header: str, message: str
) -> None:
    app, calls = basic_app()
    assert_basic_refusal(app.get("/me", headers={"Authorization": header}, status=401), message)
    assert calls == []


def test_basic_rejected_credentials_are_a_401() -> None:
    app, calls = basic_app()
    answer = app.get("/me", headers={"Authorization": basic("Aladdin:close sesame")}, status=401)
    assert_basic_refusal(answer, "wrong user name or password")
    assert calls == [("Aladdin", "close sesame")]


def test_basic_realm_is_quoted() -> None:
    app, _ = basic_app(realm='the "admin" area')
    answer = app.get("/me", status=401)
    assert answer.headers["WWW-Authenticate"] == (
        'Basic realm="the \\"admin\\" area", charset="UTF-8"'
    )


def test_any_truthy_user_is_kept_and_falsy_ones_refused() -> None:
    for user, status in ((1, 200), ("ada", 200), (["x"], 200), (0, 401), ("", 401), ([], 401)):
        app, _ = auth_app(basic_auth(lambda u, p, user=user: user))
        answer = app.get("/me", headers={"Authorization": basic("a:b")}, expect_errors=True)
        assert answer.status_int == status, user
        if status == 200:
            assert answer.json == {"user": user}


def bearer_app(realm: str | None = None) -> tuple[webtest.TestApp, list[str]]:
    seen: list[str] = []

    def verify(token: str) -> Any:
        seen.append(token)
        return {"name": "ada"} if token == "good.token-1~+/=" else None

    app, _ = auth_app(bearer_auth(verify, realm=realm))
    return app, seen


def test_bearer_token_signs_in() -> None:
    app, seen = bearer_app()
    answer = app.get("/me", headers={"Authorization": "Bearer good.token-1~+/="})
    assert answer.json == {"user": {"name": "ada"}}
    assert app.get("/me", headers={"Authorization": "bearer good.token-1~+/="}).status_int == 200
    assert seen == ["good.token-1~+/=", "good.token-1~+/="]


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic " + "YTpi"])
def test_bearer_without_a_token_gets_the_bare_challenge(header: str | None) -> None:
    for realm, challenge in ((None, "Bearer"), ("api", 'Bearer realm="api"')):
        app, seen = bearer_app(realm)
        headers = {} if header is None else {"Authorization": header}
        answer = app.get("/me", headers=headers, status=401)
        assert answer.headers["WWW-Authenticate"] == challenge
        assert answer.json["status"] == 401
        assert "send a Bearer token" in answer.json["message"]
        assert seen == []


@pytest.mark.parametrize(
    "header", ["Bearer two words", "Bearer a=b", "Bearer tok\u00e9n", "Bearer =abc", "Bearer a,b"]
)
def test_bearer_malformed_token_is_an_invalid_token_401(header: str) -> None:
    app, seen = bearer_app("api")
    answer = app.get("/me", headers={"Authorization": header}, status=401)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'
    assert answer.json["message"] == "malformed Bearer token"
    assert seen == []


def test_bearer_rejected_token_is_an_invalid_token_401() -> None:
    app, seen = bearer_app()
    answer = app.get("/me", headers={"Authorization": "Bearer forged"}, status=401)
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert answer.json["message"] == "invalid or expired token"
    assert seen == ["forged"]


@pytest.mark.parametrize("factory", [basic_auth, bearer_auth])
def test_bad_arguments_are_refused_at_the_call(factory: Any) -> None:
    with pytest.raises(TypeError, match="needs a function"):
        factory("not callable")
    with pytest.raises(ValueError, match="realm must be printable ASCII"):
        factory(lambda *args: True, realm="réalm")
    with pytest.raises(ValueError, match="realm must be printable ASCII"):
        factory(lambda *args: True, realm="a\r\nX-Injected: 1")


def test_a_check_that_raises_is_the_apps_bug_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def check(username: str, password: str) -> Any:
        raise LookupError("the user table is gone")

    app, _ = auth_app(basic_auth(check))
    app.get("/me", headers={"Authorization": basic("a:b")}, status=500)
    assert "the user table is gone" in caplog.text


def test_cors_before_auth_answers_preflights_without_credentials() -> None:
    server = Server()
    api = server.group(
        "/api", [cors(origins="https://app.test", headers="Authorization"), bearer_auth(str)]
    )

    @api.post("/notes")
    def add(request: dict[str, Any]) -> Any:
        return {"by": request["user"]}

    app = webtest.TestApp(server)
    preflight = app.options(
        "/api/notes",
        headers={
            "Origin": "https://app.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_int == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.test"
    refused = app.post("/api/notes", headers={"Origin": "https://app.test"}, status=401)
    assert refused.headers["Access-Control-Allow-Origin"] == "https://app.test"  # readable
    signed_in = app.post(
        "/api/notes", headers={"Origin": "https://app.test", "Authorization": "Bearer tok"}
    )
    assert signed_in.json == {"by": "tok"}
