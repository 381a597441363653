"""Notes: a small real site. Sign up, sign in, keep notes; a JSON API beside it.

The site's pages are Jinja2 templates (``templates/``, one layout) behind ``sessions`` (who is
signed in, in a signed cookie) and ``csrf`` (a token in every form). Passwords are stored as
werkzeug's salted scrypt hashes, never as they are. Notes live in SQLite (the standard
library's ``sqlite3``): the file NOTES_DB names, ``notes.sqlite3`` in the current directory by
default. The API under ``/api`` takes no cookies: a token from ``POST /api/token`` (Basic
authentication with the site's user name and password), sent as ``Authorization: Bearer``.

Run it (``pip install 'microwsgi[templates]'``):
    NOTES_SECRET=$(python -c 'import secrets; print(secrets.token_hex(32))') \\
        microwsgi run examples/notes/app.py --port 8080          # then open localhost:8080
    gunicorn --chdir examples/notes app:server                   # every worker shares the secret

Try the API:
    curl -X POST -u ada:a-long-password localhost:8080/api/token
    curl localhost:8080/api/notes -H "Authorization: Bearer <the token>"
    curl localhost:8080/api/notes -H "Authorization: Bearer <the token>" \\
         -H 'Content-Type: application/json' -d '{"text": "from the API"}'
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from microwsgi import Server, abort, basic_auth, bearer_auth, csrf, redirect, render, sessions

Request = dict[str, Any]

DATABASE = os.environ.get("NOTES_DB", "notes.sqlite3")
# Every process must sign with the same secret, so it comes from the environment; the fallback
# is for trying the example on one machine only.
SECRET = os.environ.get("NOTES_SECRET", "dev only: set NOTES_SECRET to 32 random bytes")
TOKEN_MAX_AGE = 24 * 3600
MIN_PASSWORD = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    text TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


@contextmanager
def database() -> Iterator[sqlite3.Connection]:
    """A connection for one request's work, committed when it ends without an error."""
    with closing(sqlite3.connect(DATABASE, timeout=10)) as conn, conn:
        conn.row_factory = sqlite3.Row
        yield conn


with database() as setup:
    setup.executescript(SCHEMA)


def find_user(user_id: int) -> dict[str, Any] | None:
    with database() as db:
        row = db.execute("SELECT id, username FROM users WHERE id = ?", (user_id,)).fetchone()
    return dict(row) if row else None


def check_password(username: str, password: str) -> dict[str, Any] | None:
    """The user whose password this is, else None (for the sign-in form and Basic auth)."""
    with database() as db:
        row = db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    if row is None or not check_password_hash(row["password_hash"], password):
        return None
    return {"id": row["id"], "username": row["username"]}


def notes_of(user: dict[str, Any]) -> list[dict[str, Any]]:
    with database() as db:
        rows = db.execute(
            "SELECT id, text, created FROM notes WHERE user_id = ? ORDER BY id DESC", (user["id"],)
        ).fetchall()
    return [dict(row) for row in rows]


def add_note(user: dict[str, Any], text: str) -> dict[str, Any]:
    with database() as db:
        cursor = db.execute("INSERT INTO notes (user_id, text) VALUES (?, ?)", (user["id"], text))
    return {"id": cursor.lastrowid, "text": text}


tokens = URLSafeTimedSerializer(SECRET, salt="notes-api")


def verify_token(token: str) -> dict[str, Any] | None:
    try:
        user_id = tokens.loads(token, max_age=TOKEN_MAX_AGE)
    except BadSignature:  # forged, or expired (SignatureExpired is one)
        return None
    return find_user(user_id) if isinstance(user_id, int) else None


server = Server()
server.templates()  # templates/ beside this file
site = server.group("", [sessions(SECRET), csrf()])
api = server.group("/api")


def signed_in(request: Request) -> dict[str, Any] | None:
    user_id = request["session"].get("user_id")
    return find_user(user_id) if isinstance(user_id, int) else None


def sign_in(request: Request, user: dict[str, Any]) -> Any:
    # A new session on signing in: nothing from before (the CSRF token included) carries over.
    request["session"].clear()
    request["session"]["user_id"] = user["id"]
    return redirect(request["url_for"]("list_notes"), 303)


def form_fields(request: Request) -> tuple[str, str]:
    return request["form"].get("username", "").strip(), request["form"].get("password", "")


@site.get("/")
def home(request: Request) -> Any:
    target = "list_notes" if signed_in(request) else "signin_form"
    return redirect(request["url_for"](target), 303)


# The sign-up and sign-in pages are one template, told which form it shows.
SIGN_UP = {"title": "Sign up", "action": "signup"}
SIGN_IN = {"title": "Sign in", "action": "signin"}


def account_page(page: dict[str, str], status: int = 200, **context: Any) -> Any:
    return render("account.html", **page, **context), status


@site.get("/signup")
def signup_form(request: Request) -> Any:
    return account_page(SIGN_UP)


@site.post("/signup")
def signup(request: Request) -> Any:
    username, password = form_fields(request)
    if not username or len(password) < MIN_PASSWORD:
        error = f"Choose a user name and a password of at least {MIN_PASSWORD} characters."
        return account_page(SIGN_UP, 400, error=error, username=username)
    try:
        with database() as db:
            cursor = db.execute(
                "INSERT INTO users (username, password_hash) VALUES (?, ?)",
                (username, generate_password_hash(password)),
            )
    except sqlite3.IntegrityError:
        return account_page(SIGN_UP, 409, error=f"The user name {username!r} is taken.")
    return sign_in(request, {"id": cursor.lastrowid, "username": username})


@site.get("/signin")
def signin_form(request: Request) -> Any:
    return account_page(SIGN_IN)


@site.post("/signin")
def signin(request: Request) -> Any:
    username, password = form_fields(request)
    user = check_password(username, password)
    if user is None:
        error = "Wrong user name or password."
        return account_page(SIGN_IN, 401, error=error, username=username)
    return sign_in(request, user)


@site.post("/signout")
def signout(request: Request) -> Any:
    request["session"].clear()
    return redirect(request["url_for"]("signin_form"), 303)


@site.get("/notes")
def list_notes(request: Request) -> Any:
    user = signed_in(request)
    if user is None:
        return redirect(request["url_for"]("signin_form"), 303)
    return render("notes.html", user=user, notes=notes_of(user))


@site.post("/notes")
def create_note(request: Request) -> Any:
    user = signed_in(request)
    if user is None:
        return redirect(request["url_for"]("signin_form"), 303)
    text = request["form"].get("text", "").strip()
    if not text:
        return render("notes.html", user=user, notes=notes_of(user), error="Write something."), 400
    add_note(user, text)
    return redirect(request["url_for"]("list_notes"), 303)


@api.post("/token", basic_auth(check_password, realm="notes"))
def api_token(request: Request) -> Any:
    token = tokens.dumps(request["user"]["id"])
    return {"token": token, "token_type": "Bearer", "expires_in": TOKEN_MAX_AGE}


@api.get("/notes", bearer_auth(verify_token, realm="notes"))
def api_list_notes(request: Request) -> Any:
    return notes_of(request["user"])


@api.post("/notes", bearer_auth(verify_token, realm="notes"))
def api_create_note(request: Request) -> Any:
    data = request["json"]
    if data is None:
        abort(415, "send the note as JSON, with Content-Type: application/json")
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        abort(400, 'expected {"text": "..."}')
    return add_note(request["user"], text.strip()), 201


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
