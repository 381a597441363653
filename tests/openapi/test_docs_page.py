"""`server.api_docs()`: the document and an interactive page, served by the app itself.

In process (WebTest): the routes it adds, the page and the Swagger UI files it loads (from the
package, never a CDN), a mount point followed, a clash refused, and the vendored files being
the ones ``SOURCE.txt`` names.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
import webtest

from microwsgi import Server
from microwsgi.openapi.docs import ASSETS


@pytest.fixture
def documented(server: Server) -> Server:
    server.register_handler("GET /notes", lambda request: [])
    server.api_docs(title="Notes <API>", version="2.0")
    return server


def test_the_document_route_answers_the_document(documented: Server) -> None:
    answer = webtest.TestApp(documented).get("/openapi.json")
    assert answer.content_type == "application/json"
    assert answer.json == documented.openapi(title="Notes <API>", version="2.0")
    assert list(answer.json["paths"]) == ["/notes"]  # its own routes are not in it


def test_the_page_loads_swagger_ui_from_the_app_only(documented: Server) -> None:
    app = webtest.TestApp(documented)
    page = app.get("/docs")
    assert page.content_type == "text/html"
    assert "<title>Notes &lt;API&gt;</title>" in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources == ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"]
    assert 'url: "/openapi.json"' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, no absolute URL
    script = app.get("/docs/swagger-ui-bundle.js")
    assert script.content_type in ("text/javascript", "application/javascript")
    assert script.body == (ASSETS / "swagger-ui-bundle.js").read_bytes()
    css = app.get("/docs/swagger-ui.css")
    assert css.content_type == "text/css"
    # Sent by send_file: cacheable, and revalidated with a 304.
    assert "max-age=86400" in css.headers["Cache-Control"]
    app.get("/docs/swagger-ui.css", headers={"If-None-Match": css.headers["ETag"]}, status=304)


def test_the_framework_routes_are_listed(documented: Server) -> None:
    listed = {route["path"]: route["handler"] for route in documented.routes()}
    assert listed["/docs"] == listed["/openapi.json"] == "api_docs('/docs', '/openapi.json')"
    assert "/docs/swagger-ui-bundle.js" in listed


def test_under_a_mount_point_the_links_and_servers_include_it(documented: Server) -> None:
    app = webtest.TestApp(documented, extra_environ={"SCRIPT_NAME": "/notebook"})
    page = app.get("/docs").text
    assert 'href="/notebook/docs/swagger-ui.css"' in page
    assert 'url: "/notebook/openapi.json"' in page
    assert app.get("/openapi.json").json["servers"] == [{"url": "/notebook"}]


def test_other_paths_work_and_a_clash_registers_nothing(server: Server) -> None:
    server.register_handler("GET /api/openapi.json", lambda request: {})
    with pytest.raises(ValueError, match=r"GET /api/openapi.json is already registered"):
        server.api_docs("/api/docs", "/api/openapi.json")
    assert [route["path"] for route in server.routes()] == ["/api/openapi.json"]
    server.api_docs("/api/docs/", "/api/spec.json")
    app = webtest.TestApp(server)
    assert 'src="/api/docs/swagger-ui-bundle.js"' in app.get("/api/docs/").text
    assert app.get("/api/spec.json").json["openapi"] == "3.1.0"


def test_the_vendored_swagger_ui_is_the_release_source_txt_names() -> None:
    source = (ASSETS / "SOURCE.txt").read_text()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        digest = hashlib.sha256((ASSETS / name).read_bytes()).hexdigest()
        assert f"{name}" in source and digest in source, name
    assert (ASSETS / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "SmartBear" in (ASSETS / "NOTICE").read_text()


def test_routes_registered_after_api_docs_are_in_its_document(server: Server) -> None:
    server.api_docs()
    server.register_handler("GET /later", lambda request: "")
    paths: Any = webtest.TestApp(server).get("/openapi.json").json["paths"]
    assert list(paths) == ["/later"]


def test_routes_the_document_cannot_tell_apart_make_the_document_a_logged_500(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.register_handler("GET /items/:id<int>", lambda request: {})
    server.register_handler("GET /items/:id", lambda request: {})
    server.api_docs()
    answer = webtest.TestApp(server).get("/openapi.json", status=500)
    assert "would be one operation" not in answer.text  # the client sees no internals
    assert "would be one operation in the OpenAPI document" in caplog.text
