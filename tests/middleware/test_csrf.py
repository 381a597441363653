"""csrf(...): the session's token, required on unsafe methods through a header or a form field;
and the order it needs, sessions(...) outside it, checked where it shows."""

from __future__ import annotations

import re
from typing import Any

import pytest
import webtest

from microwsgi import Server, csrf, sessions
from microwsgi.middleware.csrf import TOKEN_KEY

SECRET = "csrf-tests-secret-" * 3


def csrf_app(**options: Any) -> webtest.TestApp:
    server = Server()
    server.before_all(sessions(SECRET))
    server.before_all(csrf(**options))

    @server.get("/token")
    def token(request: dict[str, Any]) -> Any:
        return {"token": request["csrf_token"], "stored": request["session"][TOKEN_KEY]}

    @server.register("* /change")
    def change(request: dict[str, Any]) -> Any:
        return {"changed": request["verb"]}

    return webtest.TestApp(server)


def test_the_token_is_random_made_once_per_session_and_kept_in_it() -> None:
    app = csrf_app()
    first = app.get("/token")
    token = first.json["token"]
    assert first.json["stored"] == token
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes: 256 bits
    assert first.headers.getall("Set-Cookie")  # the new token went into the session
    again = app.get("/token")
    assert again.json["token"] == token
    assert again.headers.getall("Set-Cookie") == []  # unchanged session: no cookie
    assert csrf_app().get("/token").json["token"] != token  # another session, another token


@pytest.mark.parametrize("verb", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_pass_without_a_token(verb: str) -> None:
    app = csrf_app()
    answer = app.request("/change", method=verb)
    assert answer.status_int == 200


@pytest.mark.parametrize("verb", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_methods_pass_with_the_token_in_the_header(verb: str) -> None:
    app = csrf_app()
    token = app.get("/token").json["token"]
    answer = app.request("/change", method=verb, headers={"X-CSRF-Token": token})
    assert answer.json == {"changed": verb}


@pytest.mark.parametrize("verb", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_unsafe_methods_without_the_token_are_refused_as_missing(verb: str) -> None:
    app = csrf_app()
    app.lint = verb != "PROPFIND"  # WebTest's lint knows only the common methods
    app.get("/token")
    answer = app.request("/change", method=verb, expect_errors=True)
    assert answer.status_int == 403
    assert answer.json["status"] == 403
    assert answer.json["error"] == "Forbidden"
    assert answer.json["message"].startswith("CSRF token missing")
    assert "X-CSRF-Token header or the csrf_token field" in answer.json["message"]


def test_a_wrong_token_is_refused_as_wrong() -> None:
    app = csrf_app()
    token = app.get("/token").json["token"]
    for sent in (token[:-1], token + "x", "x" * 43, "ünïcode-token"):
        answer = app.post("/change", headers={"X-CSRF-Token": sent}, status=403)
        assert answer.json["message"].startswith("CSRF token wrong"), sent


def test_the_token_passes_in_a_url_encoded_form() -> None:
    app = csrf_app()
    token = app.get("/token").json["token"]
    assert app.post("/change", {"csrf_token": token, "title": "x"}).json == {"changed": "POST"}
    refused = app.post("/change", {"csrf_token": "forged", "title": "x"}, status=403)
    assert refused.json["message"].startswith("CSRF token wrong")
    missing = app.post("/change", {"title": "x"}, status=403)
    assert missing.json["message"].startswith("CSRF token missing")


def test_the_token_passes_in_a_multipart_form_and_the_upload_still_reads() -> None:
    server = Server()
    server.before_all(sessions(SECRET))
    server.before_all(csrf())

    @server.get("/token")
    def token(request: dict[str, Any]) -> Any:
        return request["csrf_token"]

    @server.post("/upload")
    def upload(request: dict[str, Any]) -> Any:
        return {"file": request["files"]["doc"].read().decode(), "title": request["form"]["t"]}

    app = webtest.TestApp(server)
    value = app.get("/token").text
    answer = app.post(
        "/upload",
        {"csrf_token": value, "t": "notes"},
        upload_files=[("doc", "a.txt", b"hello")],
    )
    assert answer.json == {"file": "hello", "title": "notes"}
    app.post("/upload", {"t": "notes"}, upload_files=[("doc", "a.txt", b"x")], status=403)


def test_a_token_in_a_json_body_is_not_looked_for() -> None:
    app = csrf_app()
    token = app.get("/token").json["token"]
    answer = app.post_json("/change", {"csrf_token": token}, status=403)
    assert answer.json["message"].startswith("CSRF token missing")


def test_a_forged_post_from_another_session_is_refused() -> None:
    victim = csrf_app()
    attacker = csrf_app()
    stolen_shape = attacker.get("/token").json["token"]  # the attacker's own, valid token
    victim.get("/token")
    answer = victim.post("/change", {"csrf_token": stolen_shape}, status=403)
    assert answer.json["message"].startswith("CSRF token wrong")
    fresh = csrf_app()  # a browser with no session yet: nothing to match
    assert fresh.post("/change", {"csrf_token": stolen_shape}, status=403).headers.getall(
        "Set-Cookie"
    )  # ...which gets a session, and a token, for next time


def test_header_and_field_names_can_be_chosen() -> None:
    app = csrf_app(header="X-Token", field="_t")
    token = app.get("/token").json["token"]
    assert app.post("/change", headers={"X-Token": token}).status_int == 200
    assert app.post("/change", {"_t": token}).status_int == 200
    app.post("/change", headers={"X-CSRF-Token": token}, status=403)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"header": "X Token"}, "header must be"), ({"field": ""}, "field must be")],
)
def test_bad_names_are_refused_at_the_call(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        csrf(**options)


def handler(request: dict[str, Any]) -> Any:
    return "ok"


def test_csrf_before_sessions_in_one_list_is_refused_at_registration() -> None:
    server = Server()
    with pytest.raises(TypeError, match=r"route 'POST /x'.*must run inside sessions\(\.\.\.\)"):
        server.register_handler("POST /x", handler, [csrf(), sessions(SECRET)])
    with pytest.raises(TypeError, match=r"group '/g'.*comes later in the list"):
        server.group("/g", [csrf(), sessions(SECRET)])
    server.register_handler("POST /y", handler, [sessions(SECRET), csrf()])  # the right order


def test_csrf_in_before_all_needs_sessions_registered_there_first() -> None:
    server = Server()
    with pytest.raises(TypeError, match=r"before_all.*not registered before it"):
        server.before_all(csrf())
    server.before_all(sessions(SECRET))
    server.before_all(csrf())


def test_csrf_inside_a_group_with_sessions_works() -> None:
    server = Server()
    site = server.group("", [sessions(SECRET)])
    site.register_handler("GET /token", lambda request: request["csrf_token"], csrf())
    site.register_handler("POST /save", handler, csrf())
    app = webtest.TestApp(server)
    token = app.get("/token").text
    assert app.post("/save", headers={"X-CSRF-Token": token}).text == "ok"


def test_csrf_without_sessions_is_a_logged_500_that_says_the_order_to_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server()
    group = server.group("/g", [csrf()])  # the group cannot see that no sessions() is around it
    group.register_handler("GET /page", handler)
    answer = webtest.TestApp(server).get("/g/page", status=500)
    assert answer.json["message"] == "Internal Server Error"
    assert "csrf() runs outside sessions(...)" in caplog.text
    assert "put sessions(...) before csrf()" in caplog.text
