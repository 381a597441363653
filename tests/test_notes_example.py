"""examples/notes/: the site through WebTest (forms, sessions, CSRF, the SQLite store) and its
JSON API under Basic and Bearer authentication. tests/e2e/test_notes_browser.py drives the
same site in a real browser."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from collections.abc import Callable
from itertools import count
from pathlib import Path
from types import ModuleType

import pytest
import tools
from webtest import TestApp, TestResponse

NOTES = Path(__file__).resolve().parents[1] / "examples" / "notes" / "app.py"
_loaded = count()


def load_notes(database: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of the example, keeping its notes in `database`."""
    monkeypatch.setenv("NOTES_DB", str(database))
    monkeypatch.setenv("NOTES_SECRET", "the notes tests' secret, 32 bytes or more")
    spec = importlib.util.spec_from_file_location(f"_notes_{next(_loaded)}", NOTES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with tools.extras_may_be_missing("examples/notes/app.py"):
        spec.loader.exec_module(module)
    return module


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_notes(tmp_path / "notes.sqlite3", monkeypatch)


@pytest.fixture
def browser(notes: ModuleType) -> TestApp:
    return TestApp(notes.server)


def csrf_token(page: TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def submit(app: TestApp, path: str, form_page: str, **fields: str) -> TestResponse:
    """Post a form as the browser would: with the token from the page that shows it."""
    token = csrf_token(app.get(form_page))
    return app.post(path, {"csrf_token": token, **fields}, expect_errors=True)


SignUp = Callable[..., TestResponse]


@pytest.fixture
def sign_up(browser: TestApp) -> SignUp:
    def sign_up(username: str = "ada", password: str = "a-long-password") -> TestResponse:
        return submit(browser, "/signup", "/signup", username=username, password=password)

    return sign_up


def test_sign_up_sign_out_sign_in_and_keep_notes(browser: TestApp, sign_up: SignUp) -> None:
    assert browser.get("/").location.endswith("/signin")
    signed_up = sign_up()
    assert (signed_up.status_int, signed_up.location) == (303, "/notes")
    page = browser.get("/notes")
    assert "Signed in as ada" in page.text and "No notes yet." in page.text
    assert submit(browser, "/notes", "/notes", text="buy <milk>").status_int == 303
    listed = browser.get("/notes")
    assert "<li>buy &lt;milk&gt;</li>" in listed.text  # escaped by the template
    assert submit(browser, "/signout", "/notes").location == "/signin"
    assert browser.get("/notes").location == "/signin"
    wrong = submit(browser, "/signin", "/signin", username="ada", password="not it at all")
    assert wrong.status_int == 401 and "Wrong user name or password." in wrong.text
    right = submit(browser, "/signin", "/signin", username="ada", password="a-long-password")
    assert right.location == "/notes"
    assert "<li>buy &lt;milk&gt;</li>" in browser.get("/notes").text


def test_passwords_are_stored_hashed(notes: ModuleType, sign_up: SignUp) -> None:
    sign_up(password="a-long-password")
    with sqlite3.connect(notes.DATABASE) as db:
        ((stored,),) = db.execute("SELECT password_hash FROM users").fetchall()
    assert "a-long-password" not in stored
    assert stored.startswith("scrypt:")


def test_sign_up_refuses_short_passwords_and_taken_names(sign_up: SignUp) -> None:
    short = sign_up(password="short")
    assert short.status_int == 400 and "at least 8 characters" in short.text
    assert sign_up().status_int == 303
    taken = sign_up(password="another-long-one")
    assert taken.status_int == 409 and "The user name &#39;ada&#39; is taken." in taken.text


def test_forms_without_the_csrf_token_are_refused(browser: TestApp, sign_up: SignUp) -> None:
    sign_up()
    forged = browser.post("/notes", {"text": "forged"}, status=403)
    assert forged.json["message"].startswith("CSRF token missing")
    assert "forged" not in browser.get("/notes").text
    assert browser.post("/signin", {"username": "ada", "password": "x"}, status=403)


def test_each_user_sees_only_their_notes(notes: ModuleType) -> None:
    ada, bob = TestApp(notes.server), TestApp(notes.server)
    submit(ada, "/signup", "/signup", username="ada", password="a-long-password")
    submit(bob, "/signup", "/signup", username="bob", password="another-password")
    submit(ada, "/notes", "/notes", text="ada's note")
    assert "ada's note" not in bob.get("/notes").text
    assert "ada&#39;s note" in ada.get("/notes").text


def test_the_api_under_basic_then_bearer_authentication(browser: TestApp, sign_up: SignUp) -> None:
    sign_up()
    submit(browser, "/notes", "/notes", text="from the site")
    api = TestApp(browser.app)  # no cookies: the API does not use the session
    api.authorization = ("Basic", ("ada", "a-long-password"))
    token = api.post("/api/token").json["token"]
    api.authorization = None
    bearer = {"Authorization": f"Bearer {token}"}
    assert [n["text"] for n in api.get("/api/notes", headers=bearer).json] == ["from the site"]
    created = api.post_json("/api/notes", {"text": "from the API"}, headers=bearer, status=201)
    assert created.json["text"] == "from the API"
    assert "from the API" in browser.get("/notes").text
    refused = api.get("/api/notes", headers={"Authorization": "Bearer forged"}, status=401)
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="notes", error="invalid_token"'
    api.authorization = ("Basic", ("ada", "wrong password"))
    assert api.post("/api/token", status=401).headers["WWW-Authenticate"].startswith("Basic")


def test_notes_survive_a_restart_in_the_same_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "kept.sqlite3"
    first = TestApp(load_notes(database, monkeypatch).server)
    submit(first, "/signup", "/signup", username="ada", password="a-long-password")
    submit(first, "/notes", "/notes", text="still here")
    again = TestApp(load_notes(database, monkeypatch).server)
    submit(again, "/signin", "/signin", username="ada", password="a-long-password")
    assert "still here" in again.get("/notes").text
