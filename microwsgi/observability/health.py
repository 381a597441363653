"""``server.health()``: the endpoint load balancers, orchestrators and container HEALTHCHECKs poll.

The answer is 200 ``{"status": "ok", "checks": {...}}`` when every check passes, else 503 with
``"status": "failing"``; each check is reported as ``"ok"``, as ``"failed"`` when it returned
`False`, or as the name of the exception it raised. The exception's message and traceback stay
in the server's log (``reporting.py``), written when a check starts failing and when it passes
again rather than at every poll; a client learns no more than the type. Registering the route
is ``app.py``'s business.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..chains import Handler
from ..reporting import report

__all__: list[str] = []

HealthCheck = Callable[[], object]

# The answer changes from one poll to the next: a cache on the way must not keep it.
_HEADERS = [("Cache-Control", "no-store")]


def _checked(path: str, checks: Mapping[str, HealthCheck] | None) -> dict[str, HealthCheck]:
    """`checks` as a dict; ValueError (naming `path`) for a name that is not text or a check
    that is not callable."""
    if checks is None:
        return {}
    if not isinstance(checks, Mapping):
        raise ValueError(f"health({path!r}): checks must map names to callables, got {checks!r}")
    for name, check in checks.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"health({path!r}): check name {name!r} is not a non-empty string")
        if not callable(check):
            raise ValueError(f"health({path!r}): check {name!r} is {check!r}, not a callable")
    return dict(checks)


class _Failures:
    """Which checks failed at their last run, so that a failure is logged once, not per poll."""

    def __init__(self) -> None:
        self._failing: set[str] = set()
        self._lock = threading.Lock()

    def note(self, name: str, result: str, exc: Exception | None, environ: Any) -> None:
        """Record check `name`'s `result` (and the exception it raised); log a change."""
        passed = result == "ok"
        with self._lock:
            if passed == (name not in self._failing):
                return
            if passed:
                self._failing.discard(name)
            else:
                self._failing.add(name)
        if passed:
            report(logging.INFO, "health check %r passes again", name, environ=environ)
        elif exc is None:
            report(logging.WARNING, "health check %r returned False", name, environ=environ)
        else:
            report(
                logging.WARNING,
                "health check %r failed: %s: %s",
                name,
                result,
                exc,
                environ=environ,
                exc_info=exc,
            )


def _run(check: HealthCheck) -> tuple[str, Exception | None]:
    """What the answer says about one check, and the exception it raised."""
    try:
        passed = check() is not False
    except Exception as exc:  # whatever the check raises makes the service unhealthy
        return type(exc).__name__, exc
    return ("ok" if passed else "failed"), None


def health_handler(path: str, checks: Mapping[str, HealthCheck] | None) -> Handler:
    """The handler answering the health endpoint at `path`, running `checks` in order at each
    request; ValueError for a check that is not callable or a name that is not text."""
    checks = _checked(path, checks)
    failures = _Failures()

    def health(request: dict[str, Any]) -> Any:
        results: dict[str, str] = {}
        for name, check in checks.items():
            results[name], exc = _run(check)
            failures.note(name, results[name], exc, request["environ"])
        healthy = all(result == "ok" for result in results.values())
        body = {"status": "ok" if healthy else "failing", "checks": results}
        return body, 200 if healthy else 503, _HEADERS

    return health
