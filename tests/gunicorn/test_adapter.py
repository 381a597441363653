"""microwsgi.gunicorn.adapter: a request as gunicorn's workers show it to hooks and the log."""

from __future__ import annotations

import io
import types
from typing import Any

import pytest
import tools

from microwsgi.server.protocol import RequestHead

tools.require_extra("gunicorn.config")
from gunicorn.config import Config  # noqa: E402 - after require_extra

from microwsgi.gunicorn.adapter import ErrorStream, ProxyPolicy, RequestView, ResponseView  # noqa: E402 - after require_extra


def config(**settings: Any) -> Config:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def exchange(**changes: Any) -> Any:
    """What the request views and the proxy policy read of an Exchange."""
    head = RequestHead(
        method="POST",
        target="/a%20b?x=1",
        http_version="1.0",
        headers=[("x-one", "1"), ("connection", "close")],
        content_length=None,
        chunked=False,
        expect_continue=False,
        keep_alive=False,
        path="/a%20b",
        query="x=1",
    )
    fields = {
        "head": head,
        "environ": {"wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(b"body")},
        "peer": ("10.0.0.7", "4567"),
        "status": "404 Not Found",
        "headers": [("Content-Type", "text/plain")],
        "bytes_sent": 9,
        "headers_sent": True,
        "sock": None,
    }
    fields.update(changes)
    return types.SimpleNamespace(**fields)


def test_the_request_and_response_views_read_like_gunicorns() -> None:
    request = RequestView(exchange())
    assert (request.method, request.uri, request.path, request.query) == (
        "POST", "/a%20b?x=1", "/a%20b", "x=1"
    )  # fmt: skip
    assert request.fragment == "" and request.version == (1, 0)
    assert request.headers == [("X-ONE", "1"), ("CONNECTION", "close")]
    assert request.scheme == "https" and request.body.read() == b"body"
    assert request.peer_addr == request.remote_addr == ("10.0.0.7", 4567)
    assert request.should_close()
    assert RequestView(exchange(peer=("", ""))).peer_addr == ""  # a unix socket's peer
    response = ResponseView(exchange())
    assert (response.status, response.status_code, response.sent) == ("404 Not Found", 404, 9)
    assert response.headers == [("Content-Type", "text/plain")] and response.headers_sent
    assert ResponseView(exchange(status=None)).status_code is None


def test_a_peer_that_is_no_ip_address_is_trusted_only_by_a_star() -> None:
    assert not ProxyPolicy(config()).trusts("not-an-address")
    assert ProxyPolicy(config(forwarded_allow_ips="*")).trusts("not-an-address")
    assert ProxyPolicy(config(forwarded_allow_ips="10.0.0.0/8")).trusts("10.1.2.3")


def test_a_unix_peer_without_host_gets_the_sockets_path_as_server_name() -> None:
    class Sock:
        def getsockname(self) -> str:
            return "/run/app.sock"

    environ = {"wsgi.url_scheme": "http", "REMOTE_PORT": ""}
    seen = exchange(peer=("", ""), environ=environ, sock=Sock())
    seen.head.headers = []
    ProxyPolicy(config()).apply(seen)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("/run/app.sock", "")
    assert "REMOTE_PORT" not in environ


def test_the_error_stream_takes_lines_as_a_file_does(capsys: pytest.CaptureFixture[str]) -> None:
    stream = ErrorStream(config())  # errorlog "-": gunicorn's stream is stderr
    stream.writelines(["one\n", "two\n"])
    stream.flush()
    assert capsys.readouterr().err == "one\ntwo\n"
