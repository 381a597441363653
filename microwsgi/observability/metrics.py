"""``server.metrics()``: every request counted and timed, served in Prometheus's text format.

Three metrics, made once per process by prometheus_client and shared by every `Server` in it
(each told apart by its ``route`` labels), so that a second server calling ``metrics()`` meets
no duplicate-registration error: ``microwsgi_requests_total`` (``verb``, ``route``,
``status``), ``microwsgi_request_duration_seconds`` (``verb``, ``route``) and
``microwsgi_requests_in_progress``.

They are measured around the server's WSGI application (`Measured`), so every answer counts
as sent: 404s, 405s, automatic OPTIONS answers, errors, mounted apps. Every label is bounded:
``route`` is the matched route's name, its pattern where that name is not one route's alone,
``<unmatched>`` when no route matched (never the raw path); ``verb`` is one of the methods
RFC 9110 §9 defines or ``OTHER``; ``status`` is the numeric code.

Under gunicorn with several workers prometheus_client's multiprocess mode makes one scrape
count every worker: it is on when ``PROMETHEUS_MULTIPROC_DIR`` is set before prometheus_client
is imported, which ``deploy/gunicorn.conf.py`` does. Registering the routes is ``app.py``'s
business, and so is leaving in the environ the chain it matched (``chains.ROUTE_KEY``); this
module reads the table only through ``Server.resources()`` and ``Server.match()``.
"""

from __future__ import annotations

import glob
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .._wsgi import StartResponse, WSGIApp, WSGIEnvironment
from ..chains import ROUTE_KEY, Chain, Endpoint, Handler, Resource
from ..request import request_header

try:
    import prometheus_client
    from prometheus_client import multiprocess
    from prometheus_client.exposition import choose_encoder
except ImportError:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "server.metrics() needs prometheus_client: pip install 'microwsgi[metrics]'"
    ) from None

if TYPE_CHECKING:
    from ..app import Server

__all__: list[str] = []

UNMATCHED = "<unmatched>"
# A request's series: its counter's `inc` and its duration histogram's `observe`, bound.
Series = tuple[Callable[[], None], Callable[[float], None]]
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# RFC 9110 §9.3 and RFC 5789 (PATCH); any other method is one label value, so that a client
# inventing methods adds no series.
_VERBS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


class _ProcessMetrics:
    """The process's three metrics, and the label children already looked up."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.requests = prometheus_client.Counter(
            "microwsgi_requests_total",
            "HTTP requests answered, by verb, route and status code.",
            ["verb", "route", "status"],
        )
        self.duration = prometheus_client.Histogram(
            "microwsgi_request_duration_seconds",
            "Time from the request reaching the app to the end of its answer's body.",
            ["verb", "route"],
            buckets=buckets,
        )
        # Under several processes, the sum of the live processes' gauges.
        in_progress = prometheus_client.Gauge(
            "microwsgi_requests_in_progress",
            "HTTP requests being answered.",
            multiprocess_mode="livesum",
        )
        self.begin: Callable[[], object] = in_progress.inc
        self.end: Callable[[], object] = in_progress.dec
        if not os.environ.get(MULTIPROCESS_ENV):
            # PERF: in one process the gauge is read when scraped, as the length of a deque
            # the requests enter and leave: append and pop are single (atomic) C calls, where
            # Gauge.inc and dec each take a lock and check the metric (some 8,000 instructions
            # a request, callgrind). Several processes need the gauge's own file: inc and dec.
            flight: deque[None] = deque()
            in_progress.set_function(flight.__len__)
            self.begin, self.end = partial(flight.append, None), flight.pop
        # PERF: `labels(...)` takes a lock and builds a key at each call; the children are
        # kept here instead (every label is bounded, and so are these dicts).
        self._series: dict[tuple[str, str, str], Series] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def series(self, verb: str, route: str, status: str) -> Series:
        """What counts and times a request with these labels (shared by every server)."""
        series = self._series.get((verb, route, status))
        if series is None:
            timer = self._timers.get((verb, route))
            if timer is None:
                timer = self._timers[verb, route] = self.duration.labels(verb, route)
            counter = self.requests.labels(verb, route, status)
            series = self._series[verb, route, status] = (counter.inc, timer.observe)
        return series


_process_metrics: _ProcessMetrics | None = None
_process_lock = threading.Lock()


def _metrics_for(buckets: Sequence[float] | None) -> _ProcessMetrics:
    """The process's metrics, made on the first call; ValueError when `buckets` differ from
    the ones they were made with (one histogram has one set of buckets)."""
    global _process_metrics
    wanted = tuple(float(b) for b in (buckets or prometheus_client.Histogram.DEFAULT_BUCKETS))
    if wanted[-1] != float("inf"):
        wanted = (*wanted, float("inf"))  # prometheus_client adds it too: compare like with like
    with _process_lock:
        if _process_metrics is None:
            _process_metrics = _ProcessMetrics(wanted)
        elif _process_metrics.buckets != wanted:
            raise ValueError(
                f"metrics(buckets={list(buckets or ())!r}): this process's "
                f"microwsgi_request_duration_seconds already has the buckets "
                f"{list(_process_metrics.buckets)!r}; every server in a process shares them"
            )
        return _process_metrics


def _table_labels(resources: list[Resource]) -> dict[Chain, str]:
    """The label of each chain the routes registered at `resources` are compiled into."""
    patterns: dict[str, set[str]] = {}
    for resource in resources:
        for endpoint in resource.endpoints.values():
            if endpoint.name is not None:
                patterns.setdefault(endpoint.name, set()).add(resource.pattern)
    labels: dict[Chain, str] = {}
    for resource in resources:
        for verb, chain in resource.dispatch.items():
            endpoint = resource.endpoints.get(verb) or resource.endpoints["GET"]  # HEAD
            labels[chain] = _route_label(endpoint, resource, patterns)
        if resource.any is not None:
            any_verb = resource.endpoints.get("*")
            label = (
                resource.pattern if any_verb is None else _route_label(any_verb, resource, patterns)
            )
            # A mounted app serves its prefix and everything under it: the prefix names it.
            known = labels.get(resource.any)
            labels[resource.any] = label if known is None else min(known, label, key=len)
    return labels


def _route_label(endpoint: Endpoint, resource: Resource, patterns: dict[str, set[str]]) -> str:
    """The route's name when it names this pattern alone (PyMicroHTTP code reuses function
    names), else the pattern as registered."""
    name = endpoint.name
    if name is not None and len(patterns[name]) == 1:
        return name
    return resource.pattern


class Measured:
    """A server's WSGI application, each request counted and timed until its body is done.

    A body that is a list, or a file the server sends by itself (``wsgi.file_wrapper``, kept
    unwrapped so that it still goes out by ``sendfile``), is done when the app returns it; any
    other (a stream) when the server closes it.

    A request's series are found by the chain the server called (left in the environ under
    ``chains.ROUTE_KEY``), its method and its status, and made the first time these meet. The
    routes' own chains are labelled all together, from the server's resources; the automatic
    OPTIONS and 405 answers and the 404 one by one, by the pattern that best matches their
    path, as ``chains.py`` words them. A server compiles new chains when a route is added after
    it has served: the first of them met makes every label and series anew.
    """

    def __init__(self, app: WSGIApp, server: Server, metrics: _ProcessMetrics) -> None:
        self._app = app
        self._server = server
        self._metrics = metrics
        self._begin, self._end = metrics.begin, metrics.end
        self._labels: dict[Chain, str] = {}
        # PERF: one dict lookup per request finds both children, with no label computed.
        self._series: dict[tuple[Chain | None, str, str], Series] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = perf_counter()
        self._begin()
        sent = ["500"]  # an app that raises answers 500 through the server

        def measured_start(status: str, headers: Any, *exc_info: Any) -> Callable[[bytes], object]:
            sent[0] = status[:3]
            return start_response(status, headers, *exc_info)

        try:
            body = self._app(environ, measured_start)
        except BaseException:
            self.finish(environ, sent[0], started)
            raise
        if type(body) is list or _sent_whole(body, environ.get("wsgi.file_wrapper")):
            self.finish(environ, sent[0], started)
            return body
        return _Measuring(body, lambda: self.finish(environ, sent[0], started))

    def finish(self, environ: WSGIEnvironment, status: str, started: float) -> None:
        """Count and time one request, which began at `started` and was answered `status`."""
        self._end()
        seconds = perf_counter() - started
        key = (environ.get(ROUTE_KEY), environ["REQUEST_METHOD"], status)
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key, environ.get("PATH_INFO") or "/")
        count, observe = series
        count()
        observe(seconds)

    def _new_series(self, key: tuple[Chain | None, str, str], path: str) -> Series:
        chain, method, status = key
        route = UNMATCHED if chain is None else self._labels.get(chain) or self._learn(chain, path)
        if method not in _VERBS:
            # Not kept: a client inventing methods adds no entries (nor series: one label).
            return self._metrics.series("OTHER", route, status)
        series = self._series[key] = self._metrics.series(method, route, status)
        return series

    def _learn(self, chain: Chain, path: str) -> str:
        """The label of a chain met for the first time (once for each chain)."""
        labels = _table_labels(self._server.resources())
        if chain in labels:  # one of the routes' chains, maybe compiled anew: every label anew
            self._labels, self._series = labels, {}
            return labels[chain]
        resource = self._server.match(path)
        label = self._labels[chain] = UNMATCHED if resource is None else resource.pattern
        return label


def _sent_whole(body: Iterable[bytes], wrapper: object) -> bool:
    """Whether `body` is a file the server sends by itself (its ``wsgi.file_wrapper``)."""
    return isinstance(wrapper, type) and isinstance(body, wrapper)


class _Measuring:
    """A streamed body, passed through; the measurement ends when the server closes it."""

    __slots__ = ("_body", "_done")

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done = done

    def __iter__(self) -> Any:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class _WorkersCollector(multiprocess.MultiProcessCollector):
    """prometheus_client's multiprocess collector, without two races with the workers' lives
    that made a whole scrape a 500 (prometheus/client_python#1199): a worker creating its file
    leaves it empty for a moment (the file is made, then sized), and the master's child_exit
    removes a dead worker's gauge file between the listing and the reading. An empty file holds
    no values yet and a removed one none any more: both are left out, not the scrape."""

    def collect(self) -> Any:
        retries = 2
        while True:
            files = [path for path in glob.glob(os.path.join(self._path, "*.db")) if _sized(path)]
            try:
                return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
            except FileNotFoundError:  # removed after the listing: list again, twice at most
                if not retries:
                    raise
                retries -= 1


def _sized(path: str) -> bool:
    try:
        return os.stat(path).st_size > 0
    except FileNotFoundError:
        return False


def scrape_handler() -> Handler:
    """The handler serving the metrics: the process's, or every worker's in multiprocess mode,
    in the format the scraper's ``Accept`` asks for (Prometheus text or OpenMetrics)."""

    def scrape(request: dict[str, Any]) -> Any:
        registry: Any = prometheus_client.REGISTRY
        if os.environ.get(MULTIPROCESS_ENV):
            registry = prometheus_client.CollectorRegistry()
            _WorkersCollector(registry)  # type: ignore[no-untyped-call]
        encode, content_type = choose_encoder(request_header(request, "Accept") or "")
        headers = [("Content-Type", content_type), ("Cache-Control", "no-store")]
        return encode(registry), 200, headers

    return scrape


def install(server: Server, buckets: Sequence[float] | None) -> Callable[[WSGIApp], Measured]:
    """What `Server.metrics` needs: checks `buckets` against the process's metrics and returns
    the wrapper to put around the server's WSGI application."""
    metrics = _metrics_for(buckets)
    return lambda app: Measured(app, server, metrics)
