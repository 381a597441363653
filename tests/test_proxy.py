"""Server(trusted_proxies=N): X-Forwarded-* believed from N proxies only, and never by default.

The semantics are werkzeug's ProxyFix: with N trusted proxies, the N-th value from the right of
each X-Forwarded-* header is the one the nearest trusted proxy saw; anything further left was
written by the client and is ignored. The same behaviour behind the real nginx is tested in
tests/e2e/test_nginx.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from webtest import TestApp

from microwsgi import Server

PROXY_ADDR = "10.0.0.2"  # the TCP peer: our proxy


def whoami_app(**options: Any) -> TestApp:
    server = Server(**options)

    @server.register("GET /whoami")
    def whoami(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "remote_addr": request["remote_addr"],
            "scheme": request["scheme"],
            "host": request["host"],
            "url": request["url"],
        }

    return TestApp(server, extra_environ={"REMOTE_ADDR": PROXY_ADDR})


SPOOFED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/shop",
}


@pytest.mark.parametrize("options", [{}, {"trusted_proxies": 0}], ids=["default", "zero"])
def test_forwarded_headers_are_ignored_unless_proxies_are_trusted(options: dict[str, Any]) -> None:
    seen = whoami_app(**options).get("/whoami", headers=SPOOFED).json
    assert seen == {
        "remote_addr": PROXY_ADDR,
        "scheme": "http",
        "host": "localhost",
        "url": "http://localhost/whoami",
    }


def test_one_trusted_proxy_gives_the_client_it_saw() -> None:
    headers = {**SPOOFED}
    del headers["X-Forwarded-Port"], headers["X-Forwarded-Prefix"]
    seen = whoami_app(trusted_proxies=1).get("/whoami", headers=headers).json
    assert seen == {
        "remote_addr": "203.0.113.7",
        "scheme": "https",
        "host": "shop.example",
        "url": "https://shop.example/whoami",
    }


def test_only_the_rightmost_trusted_value_counts() -> None:
    # The client sent "6.6.6.6" itself; our one proxy appended the address it saw.
    headers = {
        "X-Forwarded-For": "6.6.6.6, 203.0.113.7",
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "evil.example, shop.example",
    }
    seen = whoami_app(trusted_proxies=1).get("/whoami", headers=headers).json
    assert seen["remote_addr"] == "203.0.113.7"
    assert seen["scheme"] == "https"
    assert seen["host"] == "shop.example"


def test_two_trusted_proxies_skip_the_nearest_hop() -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.1"}
    seen = whoami_app(trusted_proxies=2).get("/whoami", headers=headers).json
    assert seen["remote_addr"] == "203.0.113.7"


def test_fewer_values_than_trusted_proxies_are_not_believed() -> None:
    # With two proxies configured, a single value cannot have come through both of them.
    headers = {"X-Forwarded-For": "203.0.113.7"}
    seen = whoami_app(trusted_proxies=2).get("/whoami", headers=headers).json
    assert seen["remote_addr"] == PROXY_ADDR


def test_forwarded_port_and_prefix_shape_the_url() -> None:
    seen = whoami_app(trusted_proxies=1).get("/whoami", headers=SPOOFED).json
    assert seen["host"] == "shop.example:8443"
    assert seen["url"] == "https://shop.example:8443/shop/whoami"


def test_default_port_of_the_forwarded_scheme_is_left_out() -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}
    headers["X-Forwarded-Port"] = "443"
    seen = whoami_app(trusted_proxies=1).get("/whoami", headers=headers).json
    assert seen["host"] == "shop.example"
    assert seen["url"] == "https://shop.example/whoami"


def test_routes_registered_after_construction_still_see_the_fix() -> None:
    # ProxyFix wraps server.wsgi_app, not a snapshot of the routes.
    server = Server(trusted_proxies=1)

    @server.register("GET /late")
    def late(request: dict[str, Any]) -> str:
        return str(request["remote_addr"])

    app = TestApp(server, extra_environ={"REMOTE_ADDR": PROXY_ADDR})
    assert app.get("/late", headers={"X-Forwarded-For": "203.0.113.7"}).text == "203.0.113.7"
