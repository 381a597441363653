"""The `microwsgi` command: `microwsgi run APP` serves any WSGI callable.

    microwsgi run examples/todos.py --port 8000 --reload
    python -m microwsgi run examples.todos:server
    microwsgi routes app:server [--json]          # what a Server has registered
    microwsgi openapi app:server [--title T]      # its OpenAPI document, as JSON

This module owns argument parsing and turning the failures a user can cause (a module that
does not import, a port in use or out of range) into one line on stderr and a non-zero exit.
Under ``--reload``, an app that fails to import is reported once and, until the next save,
every request is answered with a 500 naming the error, never left hanging. What an app
reference (``APP``) names is ``loading.py``'s; serving is `server.serve`; restarting on changes
is `server.reload`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .._address import check_port
from .loading import AppLoadError, find_app, load_app

__all__: list[str] = []  # the command is the interface: `microwsgi` runs main()

PROG = "microwsgi"


def build_parser() -> argparse.ArgumentParser:
    from ..server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig

    config = ServerConfig()  # the one set of defaults
    parser = argparse.ArgumentParser(prog=PROG, description="microwsgi command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="serve a WSGI app with the development server")
    run.add_argument(
        "app",
        metavar="APP",
        help="module, module:attr or path/to/app.py[:attr] (default attr: server, then app)",
    )
    run.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})"
    )
    run.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default: {DEFAULT_PORT}; 0 picks one)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=config.threads,
        help=f"threads answering requests (default: {config.threads})",
    )
    run.add_argument("--reload", action="store_true", help="restart when Python sources change")
    run.add_argument("--max-body-size", type=int, default=config.max_body_size, metavar="BYTES")
    run.add_argument(
        "--header-timeout", type=float, default=config.header_timeout, metavar="SECONDS"
    )
    run.add_argument(
        "--keepalive-timeout", type=float, default=config.keepalive_timeout, metavar="SECONDS"
    )
    run.add_argument(
        "--shutdown-timeout", type=float, default=config.shutdown_timeout, metavar="SECONDS"
    )
    run.add_argument("--no-access-log", action="store_true", help="do not log each request")
    routes = commands.add_parser("routes", help="list the routes of a microwsgi Server")
    routes.add_argument("app", metavar="APP", help="the Server, as `run` takes it")
    routes.add_argument("--json", action="store_true", help="print a JSON list, not a table")
    openapi = commands.add_parser("openapi", help="print the OpenAPI document of a Server")
    openapi.add_argument("app", metavar="APP", help="the Server, as `run` takes it")
    openapi.add_argument("--title", default="microwsgi app", help="the document's title")
    # Not `version`: the top-level --version (microwsgi's own) shares the namespace.
    openapi.add_argument(
        "--version", dest="api_version", default="0.1.0", help="the API's info.version"
    )
    return parser


def _error(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `microwsgi` and `python -m microwsgi`; returns the exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.version:
        from .. import __version__

        print(f"{PROG} {__version__}")
        return 0
    if args.command in ("routes", "openapi"):
        return _describe(args)
    if args.command != "run":
        parser.print_help(sys.stderr)
        return 2
    try:
        check_port(args.port)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 2
    return _run(args, args_list)


def _describe(args: argparse.Namespace) -> int:
    """`routes` and `openapi`: what a Server has registered, as a table, a list or a document."""
    from ..app import Server
    from ..routing.listing import format_routes

    try:
        app = load_app(args.app)
    except AppLoadError as exc:
        return _error(str(exc))
    if not isinstance(app, Server):
        kind = type(app).__name__
        return _error(f"{args.app} is a {kind}, not a microwsgi Server: no routes to describe")
    if args.command == "openapi":
        try:
            document = app.openapi(title=args.title, version=args.api_version)
        except ValueError as exc:  # two routes the document cannot tell apart
            return _error(str(exc))
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return 0
    routes = app.routes()
    sys.stdout.write(json.dumps(routes, indent=2) + "\n" if args.json else format_routes(routes))
    return 0


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..server import devserver, reload, sockets

    options = {
        "threads": args.threads,
        "max_body_size": args.max_body_size,
        "header_timeout": args.header_timeout,
        "keepalive_timeout": args.keepalive_timeout,
        "shutdown_timeout": args.shutdown_timeout,
        "access_log": not args.no_access_log,
    }
    inherited = os.environ.pop(reload.ENV_FD, None)
    supervisor = os.environ.pop(reload.ENV_SUPERVISOR, None)
    if inherited is not None:  # a --reload child: templates reload when changed, as code does
        from ..templates import RELOAD_ENV

        if supervisor is not None:  # before the app is imported, which may take a while
            reload.end_with_supervisor(int(supervisor))
        os.environ[RELOAD_ENV] = "1"
    if args.reload and inherited is None:
        try:
            sock = sockets.bind(args.host, args.port)
        except sockets.BindError as exc:
            return _error(str(exc))
        where = sockets.format_address(args.host, sock.getsockname()[1])
        print(f"Server listening on http://{where} (reloading on changes)", flush=True)
        return reload.supervise(argv, sock)
    try:
        found = find_app(args.app)
    except AppLoadError as exc:
        if inherited is None:
            return _error(str(exc))
        return _serve_the_error(exc, args, options, int(inherited))

    def serving(*address: object) -> None:
        print(f"{PROG}: serving {found.name}", file=sys.stderr, flush=True)

    if inherited is None:
        try:
            devserver.serve(
                found.app, args.host, args.port, listen_msg=True, ready=serving, **options
            )
        except sockets.BindError as exc:
            return _error(str(exc))
        return 0
    # A child of the --reload supervisor: serve on its socket until a source file changes.
    return _serve_until_change(
        found.app, args, options, int(inherited), reload.module_files, serving
    )


def _serve_the_error(
    error: AppLoadError, args: argparse.Namespace, options: dict[str, Any], fd: int
) -> int:
    """A --reload child whose app does not import: say so once, then answer every request
    with a 500 naming the error until a file changes (a request must never hang)."""
    from ..server import reload

    body = f"{PROG} could not load the app: {error.summary}\n".encode()

    def failed_import(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = str(len(body))
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", length)],
        )
        return [body]

    # The module that failed is not loaded, so watch the tree it lives in (and the folder).
    roots = {os.getcwd(), os.path.dirname(os.path.abspath(args.app.partition(":")[0]))}

    def files() -> set[str]:
        return set().union(*(reload.tree_files(root) for root in roots))

    def announce() -> None:
        _error(f"{error}; answering 500 until a file changes")

    return _serve_until_change(failed_import, args, options, fd, files, announce)


def _serve_until_change(
    app: Callable[..., Any],
    args: argparse.Namespace,
    options: dict[str, Any],
    fd: int,
    files: Callable[[], Iterable[str]],
    announce: Callable[[], object],
) -> int:
    from ..server import devserver, reload
    from ..server.logs import configure_logging

    server = devserver.DevServer(
        app, args.host, args.port, sock=socket.socket(fileno=fd), **options
    )
    configure_logging()
    watcher = reload.Watcher(lambda path: _restart(server, path), files).start()
    announce()  # after the watcher's first look: a change from now on restarts the app
    server.serve_forever(handle_signals=True)
    watcher.stop()
    return reload.RESTART_CODE if watcher.changed else 0


def _restart(server: Any, path: str) -> None:
    print(f"{PROG}: {path} changed, restarting", file=sys.stderr, flush=True)
    server.stop()
