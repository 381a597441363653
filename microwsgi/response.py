"""Handler return values turned into WSGI responses: the one place that knows the rules.

dict or list -> JSON; str -> UTF-8 text; bytes -> octet-stream; None -> 204; an iterator or
generator of str/bytes -> streamed as produced; ``(body, status)`` or ``(body, status, headers)``
with headers as a dict or a list of pairs (so ``Set-Cookie`` can repeat); a werkzeug `Response`
(or any WSGI app) is called as the WSGI app it is; a `Deferred` body (``render(...)``) is made
here, with the request. A `Prepared` answer (what the ready-made middleware return) is served by
the same rules as a tuple.

Content-Length is set on every body that is not streamed; 1xx, 204 and 304 answers carry no
body, 204 and 304 no Content-Type; HEAD gets the headers GET would get and no body. A value
that fits none of these, or a status or header the wire would refuse (``answer_checks.py``), is an
`InvalidResponse`, which the application logs with the handler.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from werkzeug.datastructures import Headers as HeaderMap
from werkzeug.http import parse_set_header
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Response

from ._http import status_line
from ._wsgi import StartResponse, WSGIApp, WSGIEnvironment
from .answer_checks import (
    Headers,
    InvalidResponse,
    check_wire_headers,
    checked_start_response,
    checked_status,
    header_pairs,
)

__all__ = ["make_response", "redirect"]

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BINARY_TYPE = "application/octet-stream"

# The environ key under which a Server puts itself, so that the request's lazy keys and
# `make_response` find its settings (body limits, the JSON encoder).
APP_KEY = "microwsgi.app"


class Delegate:
    """An answer produced by another WSGI app, called with the environ given here."""

    __slots__ = ("app", "environ")

    def __init__(self, app: WSGIApp, environ: WSGIEnvironment) -> None:
        self.app = app
        self.environ = environ

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.app(self.environ, start_response)


class Deferred(ABC):
    """A body made only when the answer is, because it needs the request: ``render(...)``
    (``templates.py``)."""

    __slots__ = ()

    @abstractmethod
    def answer(self, request: Mapping[str, Any]) -> tuple[list[bytes], str]:
        """The encoded body and its Content-Type (unless the headers give one)."""


def json_default(value: Any) -> Any:
    """Serialise the types JSON lacks: dataclasses, dates and times, UUIDs, Decimals, sets."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode_chunk(chunk: Any) -> bytes:
    if type(chunk) is bytes:
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise InvalidResponse(f"streamed chunk must be str or bytes, got {type(chunk).__name__}")


class StreamBody:
    """A handler's iterator sent chunk by chunk, str encoded as UTF-8.

    ``close()`` reaches the handler's iterator (so its ``finally`` blocks run when the client
    goes away), even when the server never started iterating.
    """

    __slots__ = ("_first", "_source")

    def __init__(self, first: bytes | None, source: Iterator[Any]) -> None:
        self._first = first
        self._source = source

    def __iter__(self) -> StreamBody:
        return self

    def __next__(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return _encode_chunk(next(self._source))

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


class Prepared:
    """A return value made into its status, headers and body, for a middleware to add headers.

    What `prepare` gives the ready-made middleware in place of a werkzeug `Response`: the same
    `status_code` and `headers` (a werkzeug `Headers`) to read and change, served by this
    module's rules as a ``(body, status, headers)`` tuple is. `make_response` turns it into a
    `Response` for middleware that need one.
    """

    __slots__ = ("headers", "payload", "status_code")

    def __init__(
        self, status_code: int, headers: HeaderMap, payload: list[bytes] | StreamBody
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.payload = payload

    def __repr__(self) -> str:
        return f"<Prepared {self.status_code} {self.headers.get('Content-Type')!r}>"


def _start_stream(source: Iterator[Any]) -> tuple[StreamBody, str]:
    """Pull the first chunk now: it picks the Content-Type and surfaces early errors as 500s."""
    try:
        first = next(source)
    except StopIteration:
        return StreamBody(None, source), TEXT_TYPE
    ctype = TEXT_TYPE if isinstance(first, str) else BINARY_TYPE
    try:
        encoded = _encode_chunk(first)
    except InvalidResponse:
        StreamBody(None, source).close()
        raise
    return StreamBody(encoded, source), ctype


def _json_failure(exc: Exception) -> InvalidResponse:
    # An unserialisable value or a circular reference is the handler's mistake: name it.
    return InvalidResponse(f"cannot encode the answer as JSON: {exc}")


def _default_dumps() -> Callable[[Any], bytes]:
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # no C accelerator (PyPy...): the documented path
        encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=json_default)
        return _user_dumps(encoder.encode)
    # PERF: JSONEncoder.encode builds this C encoder on every call, which costs more than
    # encoding a small dict; here it is built once. The nine positional arguments are those
    # json.encoder passes (a private API, hence the fallback above). Without the cycle check
    # (markers=None) it keeps no state, so one is safe across threads; a cyclic answer then
    # raises RecursionError instead.
    iterencode = c_make_encoder(
        None, json_default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def dumps(obj: Any) -> bytes:
        try:
            return "".join(iterencode(obj, 0)).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise _json_failure(exc) from exc

    return dumps


def _user_dumps(user_dumps: Callable[[Any], str | bytes]) -> Callable[[Any], bytes]:
    def dumps(obj: Any) -> bytes:
        try:
            out = user_dumps(obj)
        except (TypeError, ValueError) as exc:
            raise _json_failure(exc) from exc
        return out if isinstance(out, bytes) else out.encode("utf-8")

    return dumps


class Renderer:
    """Turns return values into WSGI answers; one per Server (it owns the JSON encoder)."""

    def __init__(self, json_dumps: Callable[[Any], str | bytes] | None = None) -> None:
        self.dumps: Callable[[Any], bytes] = (
            _default_dumps() if json_dumps is None else _user_dumps(json_dumps)
        )

    def render(
        self,
        rv: Any,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        request: Mapping[str, Any],
    ) -> Iterable[bytes]:
        """Answer `rv` to `request` through `start_response`; returns the body iterable."""
        kind = type(rv)
        # PERF: the commonest answers (a dict, a list, a str with status 200) skip the general
        # path: no tuple unpacking, no header merging, two headers built inline.
        if kind is dict or kind is list:
            body = self.dumps(rv)
            ctype = JSON_TYPE
        elif kind is str:
            body = rv.encode("utf-8")
            ctype = TEXT_TYPE
        else:
            return self._render_general(rv, environ, start_response, request)
        start_response(
            "200 OK",
            [("Content-Type", ctype), ("Content-Length", str(len(body)))],
        )
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def _render_general(
        self,
        rv: Any,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        request: Mapping[str, Any],
    ) -> Iterable[bytes]:
        status, headers, payload = self.split(rv, request)
        if not isinstance(payload, (list, StreamBody)):
            return payload(environ, checked_start_response(start_response))
        start_response(status_line(status), headers)
        if environ["REQUEST_METHOD"] == "HEAD" or status in (204, 304) or status < 200:
            if isinstance(payload, StreamBody):
                payload.close()
            return []
        return payload

    def split(
        self, rv: Any, request: Mapping[str, Any] | None = None
    ) -> tuple[int, Headers, list[bytes] | StreamBody | WSGIApp]:
        """Split any valid return value into status, headers and a body (or a WSGI answer);
        a `Deferred` body is made with `request`."""
        extra: Headers | None = None
        if type(rv) is tuple:
            if len(rv) not in (2, 3):
                raise InvalidResponse(
                    f"a tuple answer must be (body, status) or (body, status, headers), "
                    f"got {len(rv)} items"
                )
            body, status = rv[0], checked_status(rv[1])
            if len(rv) == 3:
                extra = header_pairs(rv[2])
        else:
            body, status = rv, 200
        if isinstance(body, (Response, Delegate, Prepared)):
            if type(rv) is tuple:
                kind = "prepared answer" if isinstance(body, Prepared) else "werkzeug Response"
                raise InvalidResponse(f"a {kind} must be returned alone, not in a tuple")
            if isinstance(body, Prepared):
                return (
                    body.status_code,
                    check_wire_headers(body.headers.to_wsgi_list()),
                    body.payload,
                )
            return getattr(body, "status_code", status), [], body
        payload: list[bytes] | StreamBody
        if isinstance(body, Deferred):
            if request is None:
                raise InvalidResponse(f"{body!r} needs the request: make_response(value, request)")
            payload, ctype = body.answer(request)
        else:
            payload, ctype = self._encode_body(body)
        if body is None and type(rv) is not tuple:
            status = 204
        return status, _finish_headers(status, ctype, payload, extra), payload

    def _encode_body(self, body: Any) -> tuple[list[bytes] | StreamBody, str]:
        if isinstance(body, (dict, list)):
            return [self.dumps(body)], JSON_TYPE
        if isinstance(body, str):
            return [body.encode("utf-8")], TEXT_TYPE
        if isinstance(body, (bytes, bytearray, memoryview)):
            return [bytes(body)], BINARY_TYPE
        if body is None:
            return [], TEXT_TYPE
        if isinstance(body, Iterator):
            return _start_stream(body)
        raise InvalidResponse(f"cannot turn a {type(body).__name__} into a response: {body!r:.80}")


def _finish_headers(
    status: int, ctype: str, payload: list[bytes] | StreamBody, extra: Headers | None
) -> Headers:
    """Default Content-Type first, user headers override it; our Content-Length always wins."""
    no_body = status in (204, 304) or status < 200
    user_ctype = False
    user_length: str | None = None
    kept: Headers = []
    for name, value in extra or ():
        lower = name.lower()
        if lower == "content-length":
            user_length = value
            continue
        if lower == "content-type":
            user_ctype = True
        kept.append((name, value))
    headers: Headers = [] if user_ctype or no_body else [("Content-Type", ctype)]
    headers.extend(kept)
    if no_body:
        return [(n, v) for n, v in headers if n.lower() != "content-type"]
    if isinstance(payload, list):
        headers.append(("Content-Length", str(sum(len(chunk) for chunk in payload))))
    elif user_length is not None:
        headers.append(("Content-Length", user_length))
    return headers


_DEFAULT_RENDERER = Renderer()
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def redirect(location: str, status: int = 302) -> tuple[str, int, Headers]:
    """An answer sending the client to `location` (a path or an absolute URL).

    Returned as a plain ``(body, status, headers)`` value, so middleware sees it like any other
    answer. Non-ASCII in `location` is percent-encoded, as the Location header must be ASCII.
    """
    if status not in _REDIRECT_STATUSES:
        raise ValueError(f"redirect status must be one of 301, 302, 303, 307, 308, got {status!r}")
    return "", status, [("Location", iri_to_uri(location))]


def prepare(rv: Any, request: Mapping[str, Any] | None = None) -> Response | Prepared:
    """`rv` made ready for a middleware to add headers: a werkzeug `Response` as it is, any
    other valid value a `Prepared` (the request as for `make_response`)."""
    if isinstance(rv, (Response, Prepared)):
        return rv
    status, headers, payload = _split_alone(rv, request)
    return Prepared(status, HeaderMap(headers), payload)


def make_response(rv: Any, request: Mapping[str, Any] | None = None) -> Response:
    """Turn any valid return value into a werkzeug `Response` (for middleware to add headers).

    Pass the request so the server's JSON encoder is used (and a ``render(...)`` can be
    rendered at all); the result, returned from a middleware or handler, is served as is.
    """
    if isinstance(rv, Response):
        return rv
    if isinstance(rv, Prepared):
        status, headers, payload = rv.status_code, rv.headers.to_wsgi_list(), rv.payload
    else:
        status, headers, payload = _split_alone(rv, request)
    response = Response(payload, status=status, headers=headers)
    if not any(name.lower() == "content-type" for name, _ in headers):
        response.headers.remove("Content-Type")  # werkzeug's default: a 204 or 304 has none
    return response


def _split_alone(
    rv: Any, request: Mapping[str, Any] | None
) -> tuple[int, Headers, list[bytes] | StreamBody]:
    """`rv` split by the request's server (the default renderer without one), refused if it
    is a WSGI app: that answers by itself, with no headers to add to."""
    app = request["environ"].get(APP_KEY) if request is not None else None
    renderer = getattr(app, "renderer", None) or _DEFAULT_RENDERER
    status, headers, payload = renderer.split(rv, request)
    if not isinstance(payload, (list, StreamBody)):
        raise InvalidResponse(f"{rv!r:.80} answers by itself and cannot become a Response")
    return status, headers, payload


def add_vary(headers: HeaderMap, field: str) -> None:
    """Name `field` in the answer's Vary, once whatever its case (RFC 9110 §12.5.5): an answer
    that depends on a request field must say so, or a shared cache serves it to others."""
    # PERF: getlist, as Headers.get raises and catches an HTTPException where there is no Vary
    # (7,500 instructions a request, callgrind). It also reads every Vary line, where `get`
    # read the first and the assignment below dropped the others.
    lines = headers.getlist("Vary")
    if not lines:  # PERF: the usual case, nothing to parse or merge: 18,000 instructions
        headers.add("Vary", field)
        return
    vary = parse_set_header(", ".join(lines))
    if field not in vary:  # a HeaderSet compares case-insensitively
        vary.add(field)
        headers["Vary"] = vary.to_header()
