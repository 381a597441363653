"""Server-rendered pages: the Jinja2 environment of ``server.templates(...)``, and ``render(...)``.

``server.templates(folder)`` (``app.py``, a thin method) calls `create_environment`: templates
are loaded from the folder, found as ``static()`` finds its own (``static.find_folder``);
autoescape is on for HTML, XML and SVG; and templates are reloaded when they change while
developing (``debug=True``, or a ``microwsgi run --reload`` child, which sets `RELOAD_ENV`),
else compiled once. A handler returns ``render(template, **context)``: a `Deferred` body that
the one place where return values become answers (``response.py``) renders with the request,
so that templates see ``request``, its ``url_for`` (right under a mount) and, where that
middleware runs, ``session`` and ``csrf_token``.

Jinja2 is the ``templates`` extra: this module imports it only where it is used, so
``from microwsgi import render`` costs nothing and a missing Jinja2 is an `ImportError` from
``templates()`` that says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .response import APP_KEY, Deferred
from .static import find_folder

if TYPE_CHECKING:
    import jinja2

__all__ = ["render"]

HTML_TYPE = "text/html; charset=utf-8"
# The markup formats whose templates escape what they print (Jinja2 would escape none).
AUTOESCAPE = ("html", "htm", "xml", "svg")
# Set to "1" by `microwsgi run --reload` in the process that serves the app (``cli/``).
RELOAD_ENV = "MICROWSGI_RELOAD_CHILD"
# What the request gives every template, when the request has it (middleware adds the last two).
REQUEST_KEYS = ("session", "csrf_token")


def create_environment(
    folder: str | os.PathLike[str],
    beside: str | None,
    debug: bool,
    options: Mapping[str, Any],
) -> jinja2.Environment:
    """The Jinja2 environment for templates in `folder`, looked up beside the module `beside`
    (the caller of ``templates()``) then in the current directory. `options` are Jinja2's own
    and win over these defaults."""
    try:
        import jinja2
    except ImportError as exc:
        raise ImportError(
            "server.templates() needs Jinja2: pip install 'microwsgi[templates]'"
        ) from exc
    defaults: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(find_folder(folder, beside, "templates")),
        "autoescape": jinja2.select_autoescape(AUTOESCAPE, default_for_string=True),
        # Jinja2 checks each template's file on every render by default: only while developing.
        "auto_reload": debug or os.environ.get(RELOAD_ENV) == "1",
    }
    return jinja2.Environment(**{**defaults, **options})


def _searched(environment: jinja2.Environment) -> str:
    """Where a template was looked for, for the message that it is not there."""
    paths = getattr(environment.loader, "searchpath", None)
    return ", ".join(map(repr, paths)) if paths else repr(environment.loader)


class Render(Deferred):
    """What ``render(...)`` returns: a template and its context, rendered with the request."""

    __slots__ = ("context", "template")

    def __init__(self, template: str, context: dict[str, Any]) -> None:
        self.template = template
        self.context = context

    def answer(self, request: Mapping[str, Any]) -> tuple[list[bytes], str]:
        import jinja2  # present: the environment this needs was made with it

        server = request["environ"].get(APP_KEY)
        environment = getattr(server, "jinja_env", None)
        if environment is None:
            raise RuntimeError(
                f"render({self.template!r}) on a server without templates: call "
                "server.templates() (with the folder of your templates) when building the app"
            )
        if server.debug:  # turned on after templates() was called
            environment.auto_reload = True
        context = {"request": request, "url_for": request["url_for"]}
        context.update((key, request[key]) for key in REQUEST_KEYS if key in request)
        context.update(self.context)
        try:
            page = environment.get_template(self.template).render(context)
        except jinja2.TemplateNotFound as exc:
            raise jinja2.TemplateNotFound(
                exc.name,
                f"template {exc.name!r} (rendering {self.template!r}) is not in "
                f"{_searched(environment)}",
            ) from exc
        return [page.encode("utf-8")], HTML_TYPE

    def __repr__(self) -> str:
        return f"render({self.template!r}, ...)"


def render(template: str, /, **context: Any) -> Render:
    """An answer rendering `template` (a path in the templates folder) with `context`.

    Return it from a handler, alone or in a ``(value, status[, headers])`` tuple, or give it
    to ``make_response(value, request)``. It is answered as ``text/html; charset=utf-8``
    unless the headers give a Content-Type. Besides `context`, the template sees ``request``
    and ``url_for`` (the request's), and ``session`` and ``csrf_token`` where that middleware
    runs; a `context` key of the same name wins.
    """
    if not isinstance(template, str):
        raise TypeError(f"render() takes the template's name as a str, got {template!r}")
    return Render(template, context)
