"""Exceptions turned into answers: error handlers, the JSON default, and logging bugs.

An `HTTPError` (or a werkzeug `HTTPException`) is an answer the code chose; anything else is a
bug: a 500 that reveals nothing to the client (the traceback only in debug mode) and is logged
once, with the route and the handler that raised it, on the channel ``reporting.py`` picks.
``@server.errorhandler(...)`` functions registered here shape either kind. The JSON shape
itself is `HTTPError.to_dict` (``errors.py``); rendering is ``response.py``'s.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ._http import is_error_status
from ._wsgi import StartResponse
from .answer_checks import InvalidResponse
from .errors import HTTPError
from .reporting import report
from .response import Delegate, Prepared, Renderer

__all__: list[str] = []

ErrorHandler = Callable[[dict[str, Any], BaseException], Any]


class ErrorAnswers:
    """One Server's error policy: its error handlers, debug mode and renderer."""

    def __init__(self, renderer: Renderer, debug: bool = False) -> None:
        self.renderer = renderer
        self.debug = debug
        self.handlers: dict[int | type[BaseException], ErrorHandler] = {}

    @staticmethod
    def check_key(key: object) -> None:
        """Refuse an `errorhandler` key that is neither an error status nor an exception class."""
        valid_class = isinstance(key, type) and issubclass(key, BaseException)
        if not (is_error_status(key) or valid_class):
            raise ValueError(
                f"errorhandler key must be a status 400..599 or an exception class, got {key!r}"
            )

    def answer(
        self, request: dict[str, Any], exc: BaseException, label: str, logged: bool = False
    ) -> Any:
        """Turn an exception into an answer: HTTPError as is, anything else as a logged 500."""
        if isinstance(exc, HTTPError):
            error = exc
        elif isinstance(exc, HTTPException) and exc.code:
            error = HTTPError(exc.code, exc.description)
        else:
            error = HTTPError(500)
            error.__cause__ = exc
        handler, argument = self._find_handler(error, exc)
        if error.__cause__ is exc and argument is error and not logged:
            # Unexpected: no handler claimed this exception class, so it is a bug to log.
            self.log_exception(request, exc, label)
        if handler is not None:
            try:
                rv = handler(request, argument)
            except Exception as handler_exc:
                # A broken error handler is a server bug, whatever status it was shaping.
                self.log_exception(request, handler_exc, f"error handler for {error.status}")
                return self._default(HTTPError(500), handler_exc)
            if type(rv) is tuple or isinstance(rv, (Response, Prepared)):
                return rv
            return rv, error.status, error.headers
        return self._default(error, exc)

    def render_failure(
        self,
        request: dict[str, Any],
        rv: Any,
        exc: Exception,
        label: str,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Answer 500 when the return value `rv` could not be sent."""
        environ = request["environ"]
        if isinstance(exc, InvalidResponse):
            report(
                logging.ERROR,
                "%s returned an invalid response %.200r: %s",
                label,
                rv,
                exc,
                environ=environ,
            )
        else:  # e.g. a generator failing before its first chunk
            self.log_exception(request, exc, label)
        if isinstance(rv, (Response, Delegate)):
            # That app may have called start_response already: a second call is legal only
            # with exc_info (PEP 3333), which re-raises if the headers went out.
            start_response = _with_exc_info(start_response)
        answer = self.answer(request, exc, label, logged=True)
        try:
            return self.renderer.render(answer, environ, start_response, request)
        except Exception as answer_exc:  # the 500 handler's own answer was unusable
            report(
                logging.ERROR,
                "error handler for 500 returned an invalid response: %s",
                answer_exc,
                environ=environ,
            )
            fallback = self._default(HTTPError(500), exc)
            return self.renderer.render(fallback, environ, start_response, request)

    def _default(self, error: HTTPError, exc: BaseException) -> tuple[Any, int, Any]:
        """The JSON error answer, with the traceback only in debug mode."""
        body = error.to_dict()
        if self.debug and error is not exc:
            body["traceback"] = "".join(traceback.format_exception(exc))
        return body, error.status, error.headers

    def _find_handler(
        self, error: HTTPError, exc: BaseException
    ) -> tuple[ErrorHandler | None, BaseException]:
        """A handler registered for the exception's class gets the exception itself;
        one registered for the status gets the HTTPError."""
        handlers = self.handlers
        for cls in type(exc).__mro__ if handlers else ():
            if cls in handlers:
                return handlers[cls], exc
        return handlers.get(error.status), error

    def log_exception(self, request: dict[str, Any], exc: BaseException, label: str) -> None:
        environ = request["environ"]
        where = f"{label} while handling {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        report(logging.ERROR, "unhandled exception in %s", where, environ=environ, exc_info=exc)


def _with_exc_info(start_response: StartResponse) -> StartResponse:
    # A second start_response is legal only with exc_info (PEP 3333); it re-raises when the
    # headers already went out, which is the right outcome then.
    def again(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, headers, exc_info or sys.exc_info())

    return again
