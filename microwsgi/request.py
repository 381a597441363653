"""The WSGI environ turned into PyMicroHTTP's request dict: every documented request key.

The request is a real ``dict`` (middleware adds keys to it, as PyMicroHTTP's auth example does).
`verb`, `path`, `params` and `environ` are filled when it is built; every other documented key
is computed on first access through ``__missing__`` and then stored, so a route that never
touches the body or the headers pays nothing for them. Other modules read the environ for
their own jobs (the app its method, path and length; ``files.py`` the conditional headers;
the ready-made middleware the headers they act on); what a handler sees is made here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from io import BytesIO
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import EnvironHeaders, MultiDict
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_cookie, parse_options_header
from werkzeug.sansio.utils import get_current_url
from werkzeug.wsgi import LimitedStream, get_host

from ._http import parse_content_length
from .errors import HTTPError
from .query import QueryDict, parse_query
from .response import APP_KEY
from .routing.urls import script_url_for

if TYPE_CHECKING:
    from .app import Server

__all__: list[str] = []

# PERF: one decoder's bound method; json.loads builds nothing new either, but first checks
# the argument's type and sniffs bytes for their encoding, which a str never needs.
_decode_json = json.JSONDecoder().decode


def decode_path(raw: str) -> str:
    """PATH_INFO arrives as latin-1-decoded bytes (PEP 3333); the request path is UTF-8 text."""
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise HTTPError(400, "request path is not valid UTF-8") from None


def request_header(request: dict[str, Any], name: str) -> str | None:
    """A request header by name, read from the environ (as WSGI spells it: ``HTTP_X_ID``).

    Middleware reads the few headers it acts on this way, without building ``headers``.
    """
    value: str | None = request["environ"].get("HTTP_" + name.upper().replace("-", "_"))
    return value


class Request(dict[str, Any]):
    """The request dict handed to handlers and middleware.

    Lazy keys are listed in `LAZY_KEYS`; ``key in request`` and ``request.get(key)`` see them
    too, while ``keys()``/iteration show only what has been computed so far.
    """

    # `chain_answered` is not a key: the middleware chain's note of whether the handler it
    # called last returned an answer, written and read by ``chains.py`` only, kept out of the
    # dict the user sees.
    __slots__ = ("chain_answered",)
    chain_answered: bool

    def __missing__(self, key: str) -> Any:
        loader = LAZY_KEYS.get(key)
        if loader is None:
            raise KeyError(key)
        value = self[key] = loader(self)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in LAZY_KEYS


def _environ(request: Request) -> dict[str, Any]:
    environ: dict[str, Any] = request["environ"]
    return environ


def _server(request: Request) -> Server | None:
    return _environ(request).get(APP_KEY)


def _headers(request: Request) -> EnvironHeaders:
    return EnvironHeaders(_environ(request))


def _query(request: Request) -> QueryDict:
    return parse_query(request["environ"].get("QUERY_STRING", ""))


def _content_length(request: Request) -> int | None:
    value = _environ(request).get("CONTENT_LENGTH")
    if not value:
        return None
    # The same rule the app's 413 check and the server's parser apply, so a length written as
    # '+20000000' cannot slip past that check and still be read.
    length = parse_content_length(value)
    if length is None:
        raise HTTPError(400, f"invalid Content-Length {value!r}")
    return length


def _max_body_size(request: Request) -> int | None:
    server = _server(request)
    return server.max_body_size if server is not None else None


def body_too_large(limit: int) -> HTTPError:
    """The 413 every body-size check answers with."""
    return HTTPError(413, f"request body is larger than {limit} bytes")


def _framed_length(request: Request) -> int | None:
    """The body's Content-Length when the server frames the body by it; None when the server
    frames it itself (chunked: `wsgi.input_terminated`) or there is no length."""
    if _environ(request).get("wsgi.input_terminated"):
        return None
    return _content_length(request)


def _data(request: Request) -> bytes:
    # An announced length over the limit was refused (413) before the handler ran.
    stream = _environ(request)["wsgi.input"]
    length = _framed_length(request)
    if length is not None:
        data: bytes = stream.read(length)
        if len(data) != length:
            raise HTTPError(400, f"request body ended after {len(data)} of {length} bytes")
        return data
    return _read_terminated(stream, _max_body_size(request))


def _read_terminated(stream: Any, limit: int | None) -> bytes:
    """Read a body the server frames itself (chunked), refusing it past `limit` bytes."""
    if limit is None:
        return stream.read()  # type: ignore[no-any-return]
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(65536, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
    return b"".join(chunks)


def _mimetype_and_options(request: Request) -> tuple[str, dict[str, str]]:
    return _parse_content_type(request["content_type"])


@lru_cache(maxsize=64)
def _parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    # PERF: a service sees a handful of distinct Content-Type values; parse each once.
    mimetype, options = parse_options_header(value)
    return mimetype.lower(), options


def _body(request: Request) -> str:
    charset = _mimetype_and_options(request)[1].get("charset", "utf-8")
    try:
        return request["data"].decode(charset)  # type: ignore[no-any-return]
    except LookupError:
        raise HTTPError(400, f"unknown charset {charset!r} in Content-Type") from None
    except UnicodeDecodeError:
        raise HTTPError(400, f"request body is not valid {charset} text") from None


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def sends_json(request: dict[str, Any]) -> bool:
    """Whether the request's Content-Type says its body is JSON (``application/json`` or
    ``application/*+json``, RFC 6839 §3.1): the one rule for `request['json']` and ``body=``."""
    ctype = request["environ"].get("CONTENT_TYPE", "")
    # PERF: the exact common value is compared before anything is parsed.
    return ctype == "application/json" or _is_json(_parse_content_type(ctype)[0])


def _json(request: Request) -> Any:
    # PERF: the common exact value spares the call.
    ctype = request["environ"].get("CONTENT_TYPE")
    if ctype != "application/json" and not sends_json(request):
        return None
    try:
        data = request["data"]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # UTF-16/32 JSON, which json.loads detects from the bytes
            return json.loads(data)
        return _decode_json(text)
    except ValueError as exc:
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from None


def _parse_form(request: Request) -> tuple[MultiDict[str, str], MultiDict[str, Any]]:
    server = _server(request)
    parser = FormDataParser(
        max_content_length=_max_body_size(request),
        max_form_memory_size=server.max_form_memory_size if server else None,
        max_form_parts=server.max_form_parts if server else None,
        silent=False,
    )
    mimetype, options = _mimetype_and_options(request)
    # PERF: dict.__contains__ asks only what is already computed; `in` would compute `data`.
    if mimetype == "multipart/form-data" and not dict.__contains__(request, "data"):
        # Uploads are streamed to their files, not held in memory: the raw body is then gone.
        raw = _environ(request)["wsgi.input"]
        length = _framed_length(request)
        stream: Any
        if length is not None:
            stream = LimitedStream(raw, length)
        else:  # framed by the server (chunked): cap it at the body limit instead
            limit = _max_body_size(request)
            stream = raw if limit is None else LimitedStream(raw, limit, is_max=True)
        request["data"] = b""
    else:
        stream, length = BytesIO(request["data"]), len(request["data"])
    try:
        _, form, files = parser.parse(stream, mimetype, length, options)
    except Exception as exc:  # werkzeug's RequestEntityTooLarge / BadRequest carry `code`
        code = getattr(exc, "code", None)
        if code in (400, 413):
            raise HTTPError(code, f"cannot parse form data: {exc}") from None
        raise
    return form, files


def _form(request: Request) -> MultiDict[str, str]:
    form, files = _parse_form(request)
    request["files"] = files
    return form


def _files(request: Request) -> MultiDict[str, Any]:
    form, files = _parse_form(request)
    request["form"] = form
    return files


def close_uploads(files: MultiDict[str, Any]) -> None:
    """Close every uploaded file (their temporary files go away with them)."""
    for _, storage in files.items(multi=True):
        storage.close()


def _wsgi_text(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "replace")


def _url(request: Request) -> str:
    """The full URL as an IRI (non-ASCII shown as text), SCRIPT_NAME included."""
    environ = _environ(request)
    return get_current_url(
        environ.get("wsgi.url_scheme", "http"),
        get_host(environ),
        _wsgi_text(environ.get("SCRIPT_NAME", "")),
        _wsgi_text(environ.get("PATH_INFO", "")),
        environ.get("QUERY_STRING", "").encode("latin-1"),
    )


def _url_for(request: Request) -> Callable[..., str]:
    server = _server(request)
    if server is None:
        raise KeyError("url_for")
    return script_url_for(server.url_for, _environ(request).get("SCRIPT_NAME", ""))


LAZY_KEYS: dict[str, Callable[[Request], Any]] = {
    "headers": _headers,
    "query": _query,
    "body": _body,
    "data": _data,
    "json": _json,
    "form": _form,
    "files": _files,
    "cookies": lambda r: parse_cookie(_environ(r)),
    "content_type": lambda r: _environ(r).get("CONTENT_TYPE", ""),
    "content_length": _content_length,
    "remote_addr": lambda r: _environ(r).get("REMOTE_ADDR"),
    "scheme": lambda r: _environ(r).get("wsgi.url_scheme", "http"),
    "host": lambda r: get_host(_environ(r)),
    "url": _url,
    "url_for": _url_for,
}
