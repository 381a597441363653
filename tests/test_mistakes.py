"""The mistakes newcomers make, caught where they are made, with a message that points at them.

At registration: other frameworks' path parameters (``<id>``, ``{id}``), middleware factories
that forget ``return handler``. On the first request: a ``register(spec)`` never applied to a
function (the forgotten ``@``), a middleware that forgets ``return next(request)``.
"""

from __future__ import annotations

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
