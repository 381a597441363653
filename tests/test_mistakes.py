"""The mistakes newcomers make, caught where they are made, with a message that points at them.

At registration: other frameworks' path parameters (``<id>``, ``{id}``), middleware factories
that forget ``return handler``. On the first request: a ``register(spec)`` never applied to a
function (the forgotten ``@``), a middleware that forgets ``return next(request)``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
import webtest

from microwsgi import Server


@pytest.mark.parametrize(
    ("spec", "native"),
    [
        ("GET /notes/<id>", "GET /notes/:id"),
        ("GET /notes/{id}", "GET /notes/:id"),
        ("GET /notes/<int:id>", "GET /notes/:id<int>"),
        ("GET /notes/{id:int}", "GET /notes/:id<int>"),
        ("GET /notes/<string:slug>", "GET /notes/:slug"),
        ("GET /files/<path:rest>", "GET /files/*rest"),
        ("GET /files/{rest:path}", "GET /files/*rest"),
        ("PUT /u/<uid>/notes/{nid}", "PUT /u/:uid/notes/:nid"),
    ],
)
def test_other_frameworks_parameters_are_refused_with_the_microwsgi_spelling(
    server: Server, spec: str, native: str
) -> None:
    for register in (
        lambda: server.register(spec),
        lambda: server.register_handler(spec, lambda request: "x"),
    ):
        with pytest.raises(ValueError) as info:
            register()
        message = str(info.value)
        assert repr(spec) in message
        assert f"write {native!r}" in message


def test_a_segment_starting_with_a_bracket_is_refused_even_when_it_cannot_be_translated(
    server: Server,
) -> None:
    with pytest.raises(ValueError, match="write a parameter as ':name'"):
        server.register("GET /a/<not-a-name>")


def test_a_refused_spec_leaves_every_other_route_working(
    server: Server, app: webtest.TestApp
) -> None:
    server.register_handler("GET /notes/:id", lambda request: request["params"])
    with pytest.raises(ValueError):
        server.register_handler("GET /other/<id>", lambda request: "never")
    assert app.get("/notes/7").json == {"id": "7"}
    app.get("/other/7", status=404)
    app.get("/other/<id>", status=404)


# -- middleware factories that do not return a handler ----------------------------------------


def forgot_return(next: Any) -> Any:
    def handler(request: dict[str, Any]) -> Any:
        return next(request)

    # no `return handler`


def returns_a_string(next: Any) -> Any:
    return "handler"


@pytest.mark.parametrize(
    ("factory", "returned"), [(forgot_return, "None"), (returns_a_string, "'handler'")]
)
def test_a_factory_not_returning_a_handler_is_refused_by_the_registering_call(
    server: Server, app: webtest.TestApp, factory: Any, returned: str
) -> None:
    server.register_handler("GET /fine", lambda request: "fine")
    expected = rf"forgot_return|returns_a_string.* returned {returned} instead of a handler"
    with pytest.raises(TypeError, match=expected) as info:
        server.register_handler("GET /one", lambda request: "x", factory)
    assert "route 'GET /one'" in str(info.value)
    assert "return handler" in str(info.value)
    with pytest.raises(TypeError, match="route 'GET /two'"):
        server.register("GET /two", [factory])  # the decorator line, before any def
    with pytest.raises(TypeError, match=r"before_all: middleware .* instead of a handler"):
        server.before_all(factory)
    with pytest.raises(TypeError, match="before_all"):
        server.before_all()(factory)
    # Nothing half-registered: every other route works, and none of the refused ones exists.
    assert app.get("/fine").text == "fine"
    app.get("/one", status=404)
    app.get("/two", status=404)


def test_a_handler_given_as_middleware_is_refused_naming_it(server: Server) -> None:
    def show(request: dict[str, Any]) -> Any:
        return request["params"]

    with pytest.raises(TypeError, match=r"middleware .*show raised TypeError") as info:
        server.register_handler("GET /x", lambda request: "x", [show])
    assert "takes `next` and returns a handler" in str(info.value)


def test_factories_are_called_once_at_registration(server: Server) -> None:
    seen: list[Any] = []

    def factory(next: Any) -> Any:
        seen.append(next)
        return next

    server.register_handler("GET /x", lambda request: "x", factory)
    assert len(seen) == 1  # with a stand-in `next`, which refuses to be called
    with pytest.raises(RuntimeError, match="before any request"):
        seen[0]({})


# -- the forgotten '@' ------------------------------------------------------------------------


def test_a_register_never_applied_is_a_warning_on_the_first_request(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    @server.register("GET /applied")
    def applied(request: dict[str, Any]) -> Any:
        return "ok"

    line = sys._getframe().f_lineno + 1
    server.register("GET /forgotten")  # the '@' is missing

    def forgotten(request: dict[str, Any]) -> Any:
        return "never"

    with caplog.at_level(logging.WARNING, logger="microwsgi"):
        app.get("/forgotten", status=404)
        app.get("/applied")
    [record] = [r for r in caplog.records if r.name == "microwsgi"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "register('GET /forgotten')" in message
    assert f"{__file__}, line {line}" in message
    assert "'@' missing" in message
    assert "/applied" not in message


def test_a_register_never_applied_is_a_warning_at_start_server(
    server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import microwsgi.app
    import microwsgi.server

    served: list[Any] = []
    monkeypatch.setattr(microwsgi.server, "serve", lambda app, **kw: served.append(app))
    monkeypatch.setattr(microwsgi.app, "serve", lambda app, **kw: served.append(app), raising=False)
    server.register("POST /forgotten")
    with caplog.at_level(logging.WARNING, logger="microwsgi"):
        server.start_server(port=0)
    assert served == [server]
    [record] = [r for r in caplog.records if r.name == "microwsgi"]
    assert "register('POST /forgotten')" in record.getMessage()
    caplog.clear()
    webtest.TestApp(server).get("/", status=404)
    assert not [r for r in caplog.records if r.name == "microwsgi"]  # said once


# -- the forgotten `return next(request)` -----------------------------------------------------


def drops_the_answer(next: Any) -> Any:
    def handler(request: dict[str, Any]) -> Any:
        next(request)  # forgot `return`

    return handler


def test_a_middleware_dropping_the_answer_is_warned_once_per_route(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    server.register_handler("GET /a", lambda request: {"a": 1}, drops_the_answer)
    server.register_handler("GET /b", lambda request: {"b": 1}, [drops_the_answer])
    with caplog.at_level(logging.WARNING, logger="microwsgi"):
        for _ in range(3):
            assert app.get("/a", status=204).body == b""  # behaviour unchanged: an empty 204
            app.get("/b", status=204)
    messages = [r.getMessage() for r in caplog.records if r.name == "microwsgi"]
    assert len(messages) == 2
    assert all("drops_the_answer returned None" in m for m in messages)
    assert all("return next(request)" in m for m in messages)
    assert any("(GET /a)" in m for m in messages) and any("(GET /b)" in m for m in messages)


def test_a_before_all_middleware_dropping_the_answer_is_named(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    def outer(next: Any) -> Any:
        return lambda request: next(request)

    server.before_all(drops_the_answer)
    server.before_all(outer)
    server.register_handler("GET /a", lambda request: "a")
    with caplog.at_level(logging.WARNING, logger="microwsgi"):
        app.get("/a", status=204)
        app.get("/missing", status=204)  # the 404 answer was dropped too
    messages = [r.getMessage() for r in caplog.records if r.name == "microwsgi"]
    assert len(messages) == 2
    assert all("drops_the_answer returned None" in m for m in messages)


def test_middleware_answering_none_on_purpose_is_not_warned(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    def no_content(next: Any) -> Any:
        def handler(request: dict[str, Any]) -> Any:
            if request["verb"] == "DELETE":
                return None  # answers itself, without calling next
            return next(request)

        return handler

    server.register_handler("DELETE /x", lambda request: "deleted", no_content)
    server.register_handler("PUT /x", lambda request: None, no_content)  # next answered None
    with caplog.at_level(logging.WARNING, logger="microwsgi"):
        app.delete("/x", status=204)
        app.put("/x", status=204)
    assert not [r for r in caplog.records if r.name == "microwsgi"]


def test_groups_and_verb_shortcuts_are_checked_the_same_way(
    server: Server, app: webtest.TestApp, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(TypeError, match=r"group '/api': middleware forgot_return returned None"):
        server.group("/api", forgot_return)
    api = server.group("/api")
    with pytest.raises(TypeError, match=r"route 'GET /api/x': middleware forgot_return"):
        api.get("/x", forgot_return)
    with pytest.raises(ValueError, match=r"write 'GET /notes/:id'"):  # as written in the group
        api.get("/notes/<id>")

    line = sys._getframe().f_lineno + 1
    api.get("/forgotten")  # a shortcut without its '@'
    with caplog.at_level(logging.WARNING, logger="microwsgi"):
        app.get("/api/forgotten", status=404)
    [record] = [r for r in caplog.records if r.name == "microwsgi"]
    # Named where the user wrote it, not inside the shortcut's own code.
    assert f"register('GET /api/forgotten') at {__file__}, line {line}" in record.getMessage()
