"""The `microwsgi` command: `microwsgi run module:attr` serves any WSGI callable.

    microwsgi run app:server --port 8000 --reload
    python -m microwsgi run examples.todos:server
    microwsgi routes app:server [--json]          # what a Server has registered

This module owns argument parsing, importing `module:attr` (from the working directory, as
`python -m` would) and turning the failures a user can cause (a module that does not import,
a port in use) into one line on stderr and a non-zero exit. Serving is `server.serve`;
restarting on changes is `server.reload`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ImportTargetError", "load_app", "main"]

PROG = "microwsgi"


class ImportTargetError(Exception):
    """`module:attr` could not be imported; the message is one line for the user."""


def load_app(target: str) -> Callable[..., Any]:
    """Import `module:attr` (attr defaults to `app`; dotted attributes are followed)."""
    module_name, _, attr = target.partition(":")
    attr = attr or "app"
    if not module_name:
        raise ImportTargetError(f"invalid target {target!r}: expected module:attr")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise ImportTargetError(f"cannot import {module_name!r}: no such module") from None
        raise ImportTargetError(f"error importing {module_name!r}: {_one_line(exc)}") from None
    except SyntaxError as exc:
        where = f"{exc.filename}, line {exc.lineno}"
        raise ImportTargetError(f"error importing {module_name!r}: {exc.msg} ({where})") from None
    except Exception as exc:
        raise ImportTargetError(f"error importing {module_name!r}: {_one_line(exc)}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportTargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        kind = type(obj).__name__
        raise ImportTargetError(f"{module_name}:{attr} is not a WSGI callable (a {kind})")
    return obj  # type: ignore[no-any-return]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="microwsgi command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="serve a WSGI app with the development server")
    run.add_argument("target", metavar="module:attr", help="the WSGI callable, e.g. app:server")
    run.add_argument("--host", default="localhost", help="address to bind (default: localhost)")
    run.add_argument("--port", type=int, default=9090, help="port (default: 9090; 0 picks one)")
    run.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    run.add_argument("--reload", action="store_true", help="restart when Python sources change")
    run.add_argument("--max-body-size", type=int, default=None, metavar="BYTES")
    run.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS")
    run.add_argument("--keepalive-timeout", type=float, default=5.0, metavar="SECONDS")
    run.add_argument("--shutdown-timeout", type=float, default=10.0, metavar="SECONDS")
    run.add_argument("--no-access-log", action="store_true", help="do not log each request")
    routes = commands.add_parser("routes", help="list the routes of a microwsgi Server")
    routes.add_argument("target", metavar="module:attr", help="the Server, e.g. app:server")
    routes.add_argument("--json", action="store_true", help="print a JSON list, not a table")
    return parser


def _error(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `microwsgi` and `python -m microwsgi`; returns the exit code."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"{PROG} {version(PROG)}")
        except PackageNotFoundError:
            print(f"{PROG} (not installed)")
        return 0
    if args.command == "routes":
        return _routes(args)
    if args.command != "run":
        parser.print_help(sys.stderr)
        return 2
    return _run(args, args_list)


def _routes(args: argparse.Namespace) -> int:
    from .app import Server
    from .listing import format_routes

    try:
        app = load_app(args.target)
    except ImportTargetError as exc:
        return _error(str(exc))
    if not isinstance(app, Server):
        kind = type(app).__name__
        return _error(f"{args.target} is a {kind}, not a microwsgi Server: no routes to list")
    routes = app.routes()
    sys.stdout.write(json.dumps(routes, indent=2) + "\n" if args.json else format_routes(routes))
    return 0


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from .logs import configure_logging
    from .server import loop, reload

    options = {
        "threads": args.threads,
        "max_body_size": args.max_body_size,
        "header_timeout": args.header_timeout,
        "keepalive_timeout": args.keepalive_timeout,
        "shutdown_timeout": args.shutdown_timeout,
        "access_log": not args.no_access_log,
    }
    inherited = os.environ.pop(reload.ENV_FD, None)
    if args.reload and inherited is None:
        try:
            sock = loop.bind(args.host, args.port)
        except loop.BindError as exc:
            return _error(str(exc))
        where = loop.format_address(args.host, sock.getsockname()[1])
        print(f"Server listening on http://{where} (reloading on changes)", flush=True)
        return reload.supervise(argv, sock)
    try:
        app = load_app(args.target)
    except ImportTargetError as exc:
        return _error(str(exc))
    if inherited is None:
        try:
            loop.serve(app, args.host, args.port, listen_msg=True, **options)
        except loop.BindError as exc:
            return _error(str(exc))
        return 0
    # A child of the --reload supervisor: serve on its socket until a source file changes.
    server = loop.DevServer(
        app, args.host, args.port, sock=socket.socket(fileno=int(inherited)), **options
    )
    configure_logging()
    watcher = reload.Watcher(lambda path: _restart(server, path)).start()
    server.serve_forever(handle_signals=True)
    watcher.stop()
    return reload.RESTART_CODE if watcher.changed else 0


def _restart(server: Any, path: str) -> None:
    print(f"{PROG}: {path} changed, restarting", file=sys.stderr, flush=True)
    server.stop()
