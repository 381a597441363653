"""Static folders: where a folder given to ``server.static`` is, and which request paths may
name a file in it.

A relative folder is looked up beside the module that calls ``static()`` (as Flask resolves
against the app's root), then in the current directory, so an app serves the same files
whatever directory it is started from; a folder found nowhere is an error at registration that
names every absolute path tried. A request path names a file only if it stays inside the
folder (no ``..``, no absolute paths, no symlink out, no dot-files unless asked).
``templates()`` finds its folder the same way. Sending the
file is ``send_file``'s (``files.py``); routing and the 404 answer are the core's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .errors import HTTPError
from .files import FileResponse, send_file

__all__: list[str] = []


def find_folder(
    directory: str | os.PathLike[str], beside: str | None = None, what: str = "static"
) -> str:
    """The real path of `directory`; a relative one is tried beside the file `beside` (the
    module calling ``static()``, or ``templates()``: `what`), then in the current directory.
    ValueError names each try."""
    directory = os.fspath(directory)
    if os.path.isabs(directory):
        candidates = [directory]
    else:
        candidates = [os.path.abspath(directory)]
        if beside is not None:
            candidates.insert(0, os.path.join(os.path.dirname(os.path.abspath(beside)), directory))
    for candidate in dict.fromkeys(candidates):
        if os.path.isdir(candidate):
            return os.path.realpath(candidate)
    tried = ", ".join(repr(c) for c in dict.fromkeys(candidates))
    where = (
        ""
        if os.path.isabs(directory)
        else (
            f" (a relative folder is looked up beside the module calling {what}(), "
            "then in the current directory)"
        )
    )
    raise ValueError(f"{what} folder {directory!r} does not exist: tried {tried}{where}")


def resolve_static_path(
    root: str, relative: str, *, index: str | None = None, dotfiles: bool = False
) -> str | None:
    """The real path of the regular file ``relative`` names under ``root``, else ``None``.

    ``root`` must already be a real (symlink-free, absolute) path. Refused: NUL bytes,
    backslashes, absolute paths, empty, ``.`` and ``..`` segments, dot-files unless
    ``dotfiles``, anything whose real path (symlinks followed) leaves ``root``, and
    directories (there is no listing; a trailing ``/`` or the empty path serves ``index``
    if one is given).
    """
    # Backslashes are separators on Windows and in many clients' "fixups"; NUL truncates
    # paths in C. Neither belongs in a URL path to a file we serve.
    if "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    segments = relative.split("/")
    wants_directory = segments[-1] == ""
    if wants_directory:
        segments.pop()
    for segment in segments:
        if segment in ("", ".", "..") or (segment.startswith(".") and not dotfiles):
            return None
    if os.path.splitdrive(relative)[0]:  # "C:..." on Windows
        return None
    candidate = os.path.join(root, *segments)
    if wants_directory or os.path.isdir(candidate):
        if index is None or not wants_directory:
            return None
        candidate = os.path.join(candidate, index)
    real = os.path.realpath(candidate)
    if real != root and os.path.commonpath([root, real]) != root:
        return None
    return real if os.path.isfile(real) else None


def static_handler(
    directory: str | os.PathLike[str],
    *,
    beside: str | None = None,
    max_age: int | None = None,
    index: str | None = None,
    dotfiles: bool = False,
    param: str = "path",
) -> Callable[[dict[str, Any]], FileResponse]:
    """A handler serving the files under ``directory`` (wired by ``Server.static``).

    The folder is found by :func:`find_folder`. The handler reads the relative path from
    ``request['params'][param]`` (the route's ``*path`` catch-all, already percent-decoded)
    and answers with :func:`send_file`, or raises ``HTTPError(404)`` for anything outside
    the directory, missing, or a directory.
    """
    root = find_folder(directory, beside)

    def serve_static(request: dict[str, Any]) -> FileResponse:
        relative = request["params"].get(param, "")
        path = resolve_static_path(root, relative, index=index, dotfiles=dotfiles)
        if path is None:
            raise HTTPError(404)
        try:
            return send_file(path, max_age=max_age)
        except OSError:  # removed or replaced since it was resolved
            raise HTTPError(404) from None

    return serve_static
