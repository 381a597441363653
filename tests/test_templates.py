"""server.templates(...) and render(...): Jinja2 pages answered as HTML, escaped, seeing the
request, its url_for, the session and the CSRF token; and every way it can go wrong named."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tools
import webtest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from microwsgi import Server, csrf, make_response, render, sessions
from microwsgi.templates import RELOAD_ENV

jinja2 = tools.require_extra("jinja2")

ROOT = Path(__file__).resolve().parent.parent
SECRET = "templates-tests-secret-" * 2


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write(
        tmp_path / "templates",
        {
            "hello.html": "<p>Hello {{ name }}!</p>",
            "show.txt": "text: {{ value }}",
            "show.html": "html: {{ value }}",
            "show.htm": "htm: {{ value }}",
            "show.xml": "<v>{{ value }}</v>",
            "show.svg": "<text>{{ value }}</text>",
            "trusted.html": "{{ value | safe }}",
            "layout.html": "<title>{% block title %}{% endblock %}</title>"
            "{% block body %}{% endblock %}",
            "page.html": '{% extends "layout.html" %}{% block title %}{{ title }}{% endblock %}'
            "{% block body %}<main>{{ body }}</main>{% endblock %}",
            "broken.html": '{% extends "no-such-layout.html" %}',
            "context.html": "path={{ request['path'] }} link={{ url_for('item', id=7) }} "
            "session={{ session['seen'] if session is defined else 'none' }} "
            "token={{ csrf_token | default('none') }}",
            "names.html": "{{ name }} {{ template }}",
            "filters.html": "{{ value | shout }} {{ site }}",
            "404.html": "<h1>Not here: {{ request['path'] }}</h1>",
        },
    )


def page_app(folder: Path, **server_options: Any) -> tuple[Server, webtest.TestApp]:
    server = Server(**server_options)
    server.templates(folder)

    @server.get("/hello/:name")
    def hello(request: dict[str, Any]) -> Any:
        return render("hello.html", name=request["params"]["name"])

    @server.get("/show/:kind")
    def show(request: dict[str, Any]) -> Any:
        return render(f"show.{request['params']['kind']}", value=request["query"]["v"])

    @server.get("/trusted")
    def trusted(request: dict[str, Any]) -> Any:
        return render("trusted.html", value="<b>bold</b>")

    @server.get("/page")
    def page(request: dict[str, Any]) -> Any:
        return render("page.html", title="Notes", body="<none>")

    @server.get("/items/:id<int>", name="item")
    def item(request: dict[str, Any]) -> Any:
        return render("context.html")

    @server.get("/created")
    def created(request: dict[str, Any]) -> Any:
        return render("hello.html", name="new"), 201, [("X-Extra", "1")]

    @server.get("/feed")
    def feed(request: dict[str, Any]) -> Any:
        return render("show.xml", value="x"), 200, {"Content-Type": "application/atom+xml"}

    @server.get("/missing")
    def missing(request: dict[str, Any]) -> Any:
        return render("no-such.html")

    @server.get("/broken")
    def broken(request: dict[str, Any]) -> Any:
        return render("broken.html")

    @server.get("/names")
    def names(request: dict[str, Any]) -> Any:
        return render("names.html", name="a name", template="a template")

    @server.errorhandler(404)
    def not_found(request: dict[str, Any], error: Any) -> Any:
        return render("404.html")

    return server, webtest.TestApp(server)


def test_a_rendered_page_is_html_in_utf8(folder: Path) -> None:
    _, app = page_app(folder)
    answer = app.get("/hello/Zo%C3%AB")
    assert answer.status_int == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.text == "<p>Hello Zoë!</p>"
    assert answer.headers["Content-Length"] == str(len(answer.body))
    head = app.head("/hello/Zo%C3%AB")
    assert head.body == b"" and head.headers["Content-Length"] == answer.headers["Content-Length"]


def test_render_in_a_tuple_takes_the_status_and_headers(folder: Path) -> None:
    _, app = page_app(folder)
    created = app.get("/created", status=201)
    assert created.text == "<p>Hello new!</p>"
    assert created.headers["X-Extra"] == "1"
    assert created.headers["Content-Type"] == "text/html; charset=utf-8"
    feed = app.get("/feed")
    assert feed.headers["Content-Type"] == "application/atom+xml"
    assert feed.headers.getall("Content-Type") == ["application/atom+xml"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("html", "html: &lt;script&gt;&#34;x&#34; &amp; y&lt;/script&gt;"),
        ("htm", "htm: &lt;script&gt;&#34;x&#34; &amp; y&lt;/script&gt;"),
        ("xml", "<v>&lt;script&gt;&#34;x&#34; &amp; y&lt;/script&gt;</v>"),
        ("svg", "<text>&lt;script&gt;&#34;x&#34; &amp; y&lt;/script&gt;</text>"),
        ("txt", 'text: <script>"x" & y</script>'),
    ],
)
def test_autoescape_is_on_for_html_xml_and_svg(folder: Path, kind: str, expected: str) -> None:
    _, app = page_app(folder)
    answer = app.get(f"/show/{kind}", params={"v": '<script>"x" & y</script>'})
    assert answer.text == expected


def test_safe_marks_trusted_markup_and_layouts_extend(folder: Path) -> None:
    _, app = page_app(folder)
    assert app.get("/trusted").text == "<b>bold</b>"
    assert app.get("/page").text == "<title>Notes</title><main>&lt;none&gt;</main>"


def test_context_may_use_the_names_name_and_template(folder: Path) -> None:
    _, app = page_app(folder)
    assert app.get("/names").text == "a name a template"


def test_templates_see_the_request_and_its_url_for_under_a_mount(folder: Path) -> None:
    server, app = page_app(folder)
    assert app.get("/items/3").text == "path=/items/3 link=/items/7 session=none token=none"
    outer = Server()
    outer.mount("/inner", server)
    mounted = webtest.TestApp(DispatcherMiddleware(Server(), {"/site": outer}))
    assert mounted.get("/site/inner/items/3").text == (
        "path=/items/3 link=/site/inner/items/7 session=none token=none"
    )


def test_templates_see_the_session_and_csrf_token_where_that_middleware_runs(
    folder: Path,
) -> None:
    server = Server()
    server.templates(folder)
    site = server.group("", [sessions(SECRET), csrf()])

    @site.get("/items/:id<int>", name="item")
    def item(request: dict[str, Any]) -> Any:
        request["session"]["seen"] = 1
        return render("context.html")

    answer = webtest.TestApp(server).get("/items/1")
    token = answer.text.rpartition("token=")[2]
    assert len(token) == 43
    assert answer.text.startswith("path=/items/1 link=/items/7 session=1 token=")
    assert answer.headers.getall("Set-Cookie")  # rendered after the handler, saved by sessions


def test_an_error_handler_may_render(folder: Path) -> None:
    _, app = page_app(folder)
    answer = app.get("/nowhere", status=404)
    assert answer.text == "<h1>Not here: /nowhere</h1>"
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"


def test_make_response_renders_with_the_request(folder: Path) -> None:
    server = Server()
    server.templates(folder)

    def framed(next: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            response = make_response(next(request), request)
            response.headers["X-Frame-Options"] = "DENY"
            return response

        return handler

    @server.get("/hello/:name", framed)
    def hello(request: dict[str, Any]) -> Any:
        return render("hello.html", name=request["params"]["name"])

    answer = webtest.TestApp(server).get("/hello/ada")
    assert (answer.text, answer.headers["X-Frame-Options"]) == ("<p>Hello ada!</p>", "DENY")
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    with pytest.raises(TypeError, match=r"needs the request: make_response\(value, request\)"):
        make_response(render("hello.html"))


def test_a_missing_template_is_a_500_whose_log_names_it_and_the_folder(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, app = page_app(folder)
    answer = app.get("/missing", status=500)
    assert answer.json["message"] == "Internal Server Error"
    assert "missing (GET /missing)" in caplog.text
    assert f"template 'no-such.html' (rendering 'no-such.html') is not in '{folder}'" in (
        caplog.text
    )
    caplog.clear()
    app.get("/broken", status=500)
    assert f"template 'no-such-layout.html' (rendering 'broken.html') is not in '{folder}'" in (
        caplog.text
    )


def test_render_without_templates_is_a_500_whose_log_says_to_call_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server()
    server.register_handler("GET /", lambda request: render("index.html"))
    webtest.TestApp(server).get("/", status=500)
    assert "render('index.html') on a server without templates: call server.templates()" in (
        caplog.text
    )


def test_templates_returns_the_environment_for_filters_and_globals(folder: Path) -> None:
    server = Server()
    environment = server.templates(folder, trim_blocks=True)
    assert isinstance(environment, jinja2.Environment) and environment.trim_blocks
    environment.filters["shout"] = str.upper
    environment.globals["site"] = "notes"
    server.register_handler("GET /", lambda request: render("filters.html", value="hi"))
    assert webtest.TestApp(server).get("/").text == "HI notes"


def test_jinja_options_win_over_the_defaults(folder: Path) -> None:
    server = Server()
    server.templates(folder, autoescape=False)
    server.register_handler("GET /", lambda request: render("hello.html", name="<i>"))
    assert webtest.TestApp(server).get("/").text == "<p>Hello <i>!</p>"


def test_the_folder_is_found_beside_the_calling_module_then_in_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site"
    write(package / "pages", {"index.html": "beside the module"})
    (package / "app.py").write_text(
        "from microwsgi import Server, render\n"
        "server = Server()\n"
        "server.templates('pages')\n"
        "server.register_handler('GET /', lambda request: render('index.html'))\n"
    )
    spec = importlib.util.spec_from_file_location("templates_site_app", package / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.chdir(tmp_path)  # not the module's folder
    spec.loader.exec_module(module)
    assert webtest.TestApp(module.server).get("/").text == "beside the module"

    write(tmp_path / "cwd-pages", {"index.html": "from the cwd"})
    server = Server()
    server.templates("cwd-pages")
    server.register_handler("GET /", lambda request: render("index.html"))
    assert webtest.TestApp(server).get("/").text == "from the cwd"


def test_a_folder_found_nowhere_is_a_value_error_naming_each_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as caught:
        Server().templates("nowhere")
    message = str(caught.value)
    assert message.startswith("templates folder 'nowhere' does not exist: tried ")
    assert str(Path(__file__).parent / "nowhere") in message
    assert str(tmp_path / "nowhere") in message
    assert "beside the module calling templates()" in message


def test_without_jinja2_templates_raises_an_import_error_naming_the_extra(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # `import jinja2` now fails
    with pytest.raises(ImportError, match=r"pip install 'microwsgi\[templates\]'"):
        Server().templates(folder)
    assert render("hello.html").template == "hello.html"  # render itself needs no Jinja2


def test_render_takes_a_template_name(folder: Path) -> None:
    with pytest.raises(TypeError, match="template's name as a str"):
        render(folder / "hello.html")  # type: ignore[arg-type]


def edit(path: Path, text: str) -> None:
    """Change a template, its modification time moved on so a reload cannot miss it."""
    path.write_text(text, encoding="utf-8")
    later = time.time_ns() + 10**9
    os.utime(path, ns=(later, later))


@pytest.mark.parametrize(
    ("debug", "reload_child", "debug_later", "reloads"),
    [
        (False, False, False, False),
        (True, False, False, True),
        (False, True, False, True),
        (False, False, True, True),
    ],
    ids=["production", "debug", "run-reload", "debug-set-later"],
)
def test_templates_reload_when_changed_only_while_developing(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug: bool,
    reload_child: bool,
    debug_later: bool,
    reloads: bool,
) -> None:
    if reload_child:
        monkeypatch.setenv(RELOAD_ENV, "1")
    else:
        monkeypatch.delenv(RELOAD_ENV, raising=False)
    server, app = page_app(folder, debug=debug)
    assert app.get("/hello/a").text == "<p>Hello a!</p>"
    server.debug = server.debug or debug_later
    edit(folder / "hello.html", "<p>Bye {{ name }}!</p>")
    assert app.get("/hello/a").text == ("<p>Bye a!</p>" if reloads else "<p>Hello a!</p>")


@pytest.fixture
def reloading_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`microwsgi run --reload` serving an app with templates, for real."""
    template = write(tmp_path / "templates", {"index.html": "first"}) / "index.html"
    (tmp_path / "webapp.py").write_text(
        textwrap.dedent(
            """
            from microwsgi import Server, render
            server = Server()
            server.templates()
            server.register_handler("GET /", lambda request: render("index.html"))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    env.pop(RELOAD_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "microwsgi", "run", "webapp:server", "--host", "127.0.0.1",
         "--port", "0", "--reload", "--no-access-log"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("Server listening on http://127.0.0.1:"), line
        port = int(line.split(":")[2].split()[0])
        for said in proc.stderr:  # the child has imported the app and serves it
            if "serving webapp" in said:
                break
        yield port, template
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()


def test_templates_reload_under_microwsgi_run_reload(reloading_server: tuple[int, Path]) -> None:
    port, template = reloading_server

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
            return str(answer.read().decode())

    assert fetch() == "first"
    edit(template, "second")  # not a .py file: the child is not restarted, Jinja2 reloads it
    assert fetch() == "second"


def test_importing_the_package_or_render_loads_no_jinja2() -> None:
    probe = "import microwsgi, sys; from microwsgi import render; print('jinja2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
