"""HTTP errors a handler or middleware can raise, and the JSON shape every error answer shares.

`HTTPError` is an exception that carries its answer: a status, a message for the client, and
optional extra headers (405 carries `Allow`). The application turns it into a response in one
place (`failures.py`), so 404, 405, 500 and user-raised errors all look the same on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from ._http import is_error_status, reason_phrase
from .answer_checks import header_pairs

__all__ = ["HTTPError", "abort"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None


class HTTPError(Exception):
    """Raise anywhere in a handler or middleware to answer with `status`.

    >>> raise HTTPError(404, "no such todo")

    The client receives `{"status": 404, "error": "Not Found", "message": "no such todo"}`
    unless an `@server.errorhandler(404)` shapes it differently. `headers` are added to the
    answer, given as a returned tuple gives them: a dict, or a list of (name, value) pairs.
    """

    def __init__(
        self,
        status: int = 500,
        message: str | None = None,
        headers: HeadersArg = None,
    ) -> None:
        if not is_error_status(status):
            raise ValueError(f"HTTPError status must be an int in 400..599, got {status!r}")
        self.status = status
        self.reason = reason_phrase(status)
        self.message = message if message is not None else self.reason
        self.headers = header_pairs(headers) if headers else []
        super().__init__(status, self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body every error answer uses."""
        return {"status": self.status, "error": self.reason, "message": self.message}

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r})"


def abort(status: int, message: str | None = None, headers: HeadersArg = None) -> NoReturn:
    """Stop handling the request and answer with `status` (shorthand for raising HTTPError).

    >>> abort(401, "token expired", headers={"WWW-Authenticate": "Bearer"})
    """
    raise HTTPError(status, message, headers)
