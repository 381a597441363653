"""Server.static / static_handler: types, validators, ranges, and no way out of the folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import webtest  # tests/conftest.py imports it first, silencing its cgi warning

from microwsgi import HTTPError, Server
from microwsgi.static import resolve_static_path, static_handler

SECRET = b"TOP-SECRET outside the static folder"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/secret.txt (must never be served) and tmp/public/ (the static folder)."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    public = tmp_path / "public"
    (public / "css").mkdir(parents=True)
    (public / "docs").mkdir()
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "css" / "site.css").write_text("body { color: red }")
    (public / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (public / "data.json").write_text('{"a": 1}')
    (public / "docs" / "index.html").write_text("<h1>docs</h1>")
    (public / "with space ü.txt").write_text("unicode name")
    (public / ".env").write_text("PASSWORD=hunter2")
    (
        public / "%2e%2e"
    ).mkdir()  # a real folder literally named %2e%2e (see the double-encoding test)
    os.symlink(tmp_path / "secret.txt", public / "leak.txt")
    os.symlink(tmp_path, public / "up")
    os.symlink(public / "css" / "site.css", public / "alias.css")
    return tmp_path


class Recorder:
    """Remembers which route params reached a 404, to prove the static handler refused it."""

    def __init__(self) -> None:
        self.params: list[dict[str, str]] = []


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(tree: Path, recorder: Recorder) -> webtest.TestApp:
    server = Server()
    server.static("/static", str(tree / "public"))

    @server.errorhandler(404)
    def not_found(request: dict[str, Any], error: HTTPError) -> Any:
        recorder.params.append(dict(request["params"]))
        return {"error": "not found"}, 404

    return webtest.TestApp(server)


@pytest.mark.parametrize(
    ("url", "content_type"),
    [
        ("/static/index.html", "text/html; charset=utf-8"),
        ("/static/css/site.css", "text/css; charset=utf-8"),
        ("/static/logo.png", "image/png"),
        ("/static/data.json", "application/json"),
        ("/static/with%20space%20%C3%BC.txt", "text/plain; charset=utf-8"),
    ],
)
def test_serves_files_with_their_types(app: webtest.TestApp, url: str, content_type: str) -> None:
    res = app.get(url)
    assert res.status_int == 200
    assert res.headers["Content-Type"] == content_type
    assert res.headers["ETag"]
    assert res.headers["Last-Modified"]


def test_body_is_the_file(app: webtest.TestApp, tree: Path) -> None:
    assert app.get("/static/css/site.css").body == (tree / "public/css/site.css").read_bytes()


def test_304_by_etag(app: webtest.TestApp) -> None:
    etag = app.get("/static/logo.png").headers["ETag"]
    app.get("/static/logo.png", headers={"If-None-Match": etag}, status=304)


def test_304_by_if_modified_since(app: webtest.TestApp) -> None:
    last_modified = app.get("/static/logo.png").headers["Last-Modified"]
    app.get("/static/logo.png", headers={"If-Modified-Since": last_modified}, status=304)


def test_range(app: webtest.TestApp) -> None:
    res = app.get("/static/logo.png", headers={"Range": "bytes=0-7"}, status=206)
    assert res.body == b"\x89PNG\r\n\x1a\n"
    assert res.headers["Content-Range"] == "bytes 0-7/108"
    refused = app.get("/static/logo.png", headers={"Range": "bytes=108-"}, status=416)
    assert refused.json == {
        "status": 416,
        "error": HTTPError(416).reason,
        "message": "no requested range is within the file's 108 bytes",
    }


def test_head(app: webtest.TestApp) -> None:
    res = app.head("/static/logo.png")
    assert res.headers["Content-Length"] == "108"
    assert res.body == b""


def test_symlink_inside_the_folder_is_served(app: webtest.TestApp) -> None:
    assert app.get("/static/alias.css").body == b"body { color: red }"


def test_missing_file_is_404(app: webtest.TestApp, recorder: Recorder) -> None:
    app.get("/static/nope.txt", status=404)
    assert recorder.params == [{"path": "nope.txt"}]


# Each way out is its own case. `reaches` is the decoded path the static handler must refuse:
# asserting it proves the request got past routing to the handler, and was refused there.
ESCAPES = {
    "dot-dot": ("/static/../secret.txt", "../secret.txt"),
    "dot-dot-deep": ("/static/css/../../secret.txt", "css/../../secret.txt"),
    "percent-encoded-dot-dot": ("/static/%2e%2e/secret.txt", "../secret.txt"),
    "percent-encoded-slash": ("/static/..%2fsecret.txt", "../secret.txt"),
    # Decoded once by the server: the handler sees a literal '%2e%2e' folder name, which here
    # exists but does not hold the secret. Nothing decodes twice.
    "double-encoded-dot-dot": ("/static/%252e%252e/secret.txt", "%2e%2e/secret.txt"),
    "backslash": ("/static/..%5csecret.txt", "..\\secret.txt"),
    "backslash-absolute": ("/static/%5cetc%5cpasswd", "\\etc\\passwd"),
    "absolute-path": ("/static//etc/passwd", "/etc/passwd"),
    "nul-byte": ("/static/index.html%00.png", "index.html\x00.png"),
    "symlink-to-outside-file": ("/static/leak.txt", "leak.txt"),
    "symlink-to-outside-folder": ("/static/up/secret.txt", "up/secret.txt"),
    "dotfile": ("/static/.env", ".env"),
    "directory": ("/static/css", "css"),
    "directory-with-slash": ("/static/css/", "css/"),
    "root-directory": ("/static/", ""),
}


@pytest.mark.parametrize(("url", "reaches"), ESCAPES.values(), ids=ESCAPES.keys())
def test_no_way_out(app: webtest.TestApp, recorder: Recorder, url: str, reaches: str) -> None:
    res = app.get(url, status=404)
    assert SECRET not in res.body
    assert b"hunter2" not in res.body
    assert recorder.params == [{"path": reaches}]


def test_index_file_when_asked_for(tree: Path) -> None:
    server = Server()
    server.static("/site", str(tree / "public"), index="index.html")
    app = webtest.TestApp(server)
    assert app.get("/site/").body == b"<h1>home</h1>"
    assert app.get("/site/docs/").body == b"<h1>docs</h1>"
    app.get("/site/docs", status=404)  # a directory without '/': no index, no redirect
    app.get("/site/css/", status=404)  # no index.html there, and never a listing


def test_dotfiles_when_allowed(tree: Path) -> None:
    server = Server()
    server.static("/s", str(tree / "public"), dotfiles=True)
    app = webtest.TestApp(server)
    assert app.get("/s/.env").body == b"PASSWORD=hunter2"
    app.get("/s/../secret.txt", status=404)


def test_max_age(tree: Path) -> None:
    server = Server()
    server.static("/s", str(tree / "public"), max_age=600)
    res = webtest.TestApp(server).get("/s/logo.png")
    assert "max-age=600" in res.headers["Cache-Control"]


def test_missing_directory_fails_at_registration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        static_handler(tmp_path / "missing")


# -- where a relative folder is looked up -----------------------------------------------------

APP_MODULE = """
from microwsgi import Server

server = Server()
server.static("/s", "public")
"""


def import_app(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"static_app_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.server


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/project/app.py calling static('/s', 'public'), run from another directory."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "app.py").write_text(APP_MODULE)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return tmp_path


def test_a_relative_folder_is_found_beside_the_calling_module(project: Path) -> None:
    (project / "project" / "public").mkdir()
    (project / "project" / "public" / "a.txt").write_text("beside the module")
    server = import_app(project / "project" / "app.py")
    assert webtest.TestApp(server).get("/s/a.txt").text == "beside the module"


def test_the_current_directory_is_still_searched_next(project: Path) -> None:
    (project / "elsewhere" / "public").mkdir()
    (project / "elsewhere" / "public" / "a.txt").write_text("in the current directory")
    server = import_app(project / "project" / "app.py")
    assert webtest.TestApp(server).get("/s/a.txt").text == "in the current directory"


def test_beside_the_module_wins_over_the_current_directory(project: Path) -> None:
    for where in ("project", "elsewhere"):
        (project / where / "public").mkdir()
        (project / where / "public" / "a.txt").write_text(where)
    server = import_app(project / "project" / "app.py")
    assert webtest.TestApp(server).get("/s/a.txt").text == "project"


def test_a_missing_folder_names_every_absolute_path_tried(project: Path) -> None:
    with pytest.raises(ValueError) as info:
        import_app(project / "project" / "app.py")
    message = str(info.value)
    assert repr(str(project / "project" / "public")) in message
    assert repr(str(project / "elsewhere" / "public")) in message
    assert "beside the module calling static()" in message


@pytest.mark.parametrize(
    "relative",
    ["", "a/", "../x", "a/../../x", "./a", "a//b", "/abs", "a\\b", "a\x00b", ".hidden", "a/.git/x"],
)
def test_resolve_refuses(tree: Path, relative: str) -> None:
    assert resolve_static_path(os.path.realpath(tree / "public"), relative) is None


def test_resolve_returns_the_real_path(tree: Path) -> None:
    root = os.path.realpath(tree / "public")
    assert resolve_static_path(root, "alias.css") == os.path.join(root, "css", "site.css")
