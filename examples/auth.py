"""PyMicroHTTP's token example: log in for a signed token, send it back as a Bearer token.

Tokens are signed and timestamped with itsdangerous (installed with microwsgi, whose sessions
it signs): the server keeps no session, and a token nobody signed with the secret key,
or one older than TOKEN_MAX_AGE, is refused.

Run it:
    python examples/auth.py                       # built-in server, localhost:8080 (or $HOST:$PORT)
    MICROWSGI_AUTH_SECRET=... gunicorn --chdir examples auth:server

Try it:
    curl localhost:8080/login -H 'Content-Type: application/json' \
         -d '{"username": "alice", "password": "wonderland"}'
    curl localhost:8080/me -H "Authorization: Bearer <the token>"
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from microwsgi import Server, abort

Request = dict[str, Any]
Handler = Callable[[Request], Any]

# Every process that checks tokens must share the key: under gunicorn each worker imports this
# module, so a random per-process key would make a token from one worker fail on the next.
SECRET_KEY = os.environ.get("MICROWSGI_AUTH_SECRET", "dev-only-secret-change-me")
TOKEN_MAX_AGE = 3600  # seconds

# A stand-in for a user table: only password hashes are kept.
USERS = {"alice": generate_password_hash("wonderland")}

tokens = URLSafeTimedSerializer(SECRET_KEY, salt="microwsgi-example-auth")
server = Server()


def unauthorized(message: str) -> NoReturn:
    # RFC 6750 section 3: a 401 for a Bearer-protected resource names the scheme it expects.
    abort(401, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def require_token(next: Handler) -> Handler:
    """Middleware: let the request through only with a valid token; put its user on the request."""

    def handler(request: Request) -> Any:
        scheme, _, token = request["headers"].get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            unauthorized("missing bearer token")
        try:
            payload = tokens.loads(token, max_age=TOKEN_MAX_AGE)
        except SignatureExpired:
            unauthorized("token expired")
        except BadSignature:
            unauthorized("invalid token")
        request["user"] = payload["user"]
        return next(request)

    return handler


@server.register("POST /login")
def login(request: Request) -> Any:
    # The parsed body when it is sent as JSON (invalid JSON is already a 400), else None.
    data = request["json"]
    if data is None:
        abort(415, "send the credentials as JSON, with Content-Type: application/json")
    if not isinstance(data, dict):
        abort(400, 'expected a JSON object: {"username": "...", "password": "..."}')
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        abort(400, "username and password are required")
    password_hash = USERS.get(username)
    if password_hash is None or not check_password_hash(password_hash, password):
        abort(401, "wrong username or password")
    token = tokens.dumps({"user": username})
    return {"token": token, "token_type": "Bearer", "expires_in": TOKEN_MAX_AGE}


@server.register("GET /ping")
def ping(request: Request) -> dict[str, str]:
    return {"resp": "pong"}


@server.register("GET /me", require_token)
def me(request: Request) -> dict[str, str]:
    return {"user": request["user"]}


@server.register("GET /hello", require_token)
def hello(request: Request) -> str:
    return f"Hello {request['user']}!"


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"), port=int(os.environ.get("PORT", "8080"))
    )
