"""The interactive documentation page: `Server.api_docs()`.

``server.api_docs(path='/docs', spec='/openapi.json')`` registers, as the framework's own routes
(``internal``: served and listed, never in the document), ``GET spec`` answering the OpenAPI
document as JSON, ``GET path`` answering a page that renders it with Swagger UI 5, and one
route per file that page loads (``path/swagger-ui-bundle.js``, ``path/swagger-ui.css``). The
files are Swagger UI's own dist files, kept unchanged beside this module (``swagger_ui/``, with
their licence and where they come from in ``SOURCE.txt``) and sent by `send_file`, with its
ETag and caching headers: the page works offline and loads nothing from a CDN.

The page and the document are built at each request, so routes registered after ``api_docs``
are on them too, and they follow a mount point: under a WSGI ``SCRIPT_NAME`` the page's links
and the document's ``servers`` include it. Building the document is ``document.py``'s.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..chains import Handler
from ..files import FileResponse, send_file
from ..routing.table import RouteTable

__all__: list[str] = []

ASSETS = Path(__file__).resolve().parent / "swagger_ui"
# The files the page loads, by the name they are served under (beside the page).
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
# A day: the files change only with microwsgi, and their ETag revalidates them after that.
_MAX_AGE = 86400

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{js}"></script>
<script>
window.ui = SwaggerUIBundle({{url: {spec}, dom_id: "#swagger-ui", deepLinking: true}});
</script>
</body>
</html>
"""


def register_docs(
    routes: RouteTable,
    document: Callable[[], dict[str, Any]],
    path: str,
    spec: str,
    title: str,
) -> None:
    """Record the document's route, the page's and its files' in `routes` (see above)."""
    base = path.rstrip("/")
    owner = f"api_docs({path!r}, {spec!r})"

    def openapi_document(request: dict[str, Any]) -> dict[str, Any]:
        built = document()
        script = _script_name(request)
        if script:  # the app is mounted: its paths start there
            built["servers"] = [{"url": script}]
        return built

    def docs_page(request: dict[str, Any]) -> tuple[str, int, list[tuple[str, str]]]:
        script = _script_name(request)
        page = _PAGE.format(
            title=html.escape(title),
            css=html.escape(f"{script}{base}/swagger-ui.css"),
            js=html.escape(f"{script}{base}/swagger-ui-bundle.js"),
            # json.dumps makes a JS string literal; '</' must not close the script element.
            spec=json.dumps(f"{script}{spec}").replace("</", "<\\/"),
        )
        return page, 200, [("Content-Type", "text/html; charset=utf-8")]

    handlers: dict[str, Handler] = {spec: openapi_document, path: docs_page}
    handlers.update({f"{base}/{name}": _asset(ASSETS / name) for name in _FILES})
    for route in handlers:  # all are checked before any is recorded
        taken = routes.router.get(routes.check(f"GET {route}")[1])
        if taken is not None and ("GET" in taken.endpoints or taken.mounted is not None):
            raise ValueError(f"{owner}: GET {route} is already registered")
    for route, handler in handlers.items():
        routes.add(f"GET {route}", handler, [], description=owner, internal=True)


def _asset(file: Path) -> Callable[[dict[str, Any]], FileResponse]:
    def asset(request: dict[str, Any]) -> FileResponse:
        return send_file(file, max_age=_MAX_AGE)

    return asset


def _script_name(request: dict[str, Any]) -> str:
    """The app's mount point, as text (WSGI gives it as latin-1-decoded bytes)."""
    script: str = request["environ"].get("SCRIPT_NAME", "")
    return script.encode("latin-1").decode("utf-8", "replace").rstrip("/")
