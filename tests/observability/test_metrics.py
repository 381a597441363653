"""server.metrics(): every request counted and timed with bounded labels, the scrape read back
by prometheus_client's own parser, several servers in one process, the missing extra.

prometheus_client's registry is the process's, shared by every test here: each test reads the
counts it caused as differences between two scrapes, or on routes only it names.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from typing import Any

import pytest
import tools
import webtest  # tests/conftest.py imports it first, silencing its cgi warning
from werkzeug.test import create_environ

from microwsgi import Server, abort

parser = tools.require_extra("prometheus_client.parser")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(app: webtest.TestApp, path: str = "/metrics") -> Samples:
    res = app.get(path)
    assert res.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parser.text_string_to_metric_families(res.text)
        for sample in family.samples
    }


def requests(samples: Samples, **labels: str) -> float:
    """microwsgi_requests_total for exactly these labels (0 when absent)."""
    return samples.get(("microwsgi_requests_total", frozenset(labels.items())), 0.0)


def added(before: Samples, after: Samples, **labels: str) -> float:
    """How many requests with exactly these labels were counted between two scrapes."""
    return requests(after, **labels) - requests(before, **labels)


def routes_of(samples: Samples) -> set[str]:
    return {dict(labels)["route"] for name, labels in samples if name == "microwsgi_requests_total"}


@pytest.fixture
def measured() -> tuple[Server, webtest.TestApp]:
    server = Server()
    server.metrics()

    @server.register("GET /m/items/:id<int>")
    def metrics_item(request: dict[str, Any]) -> Any:
        if request["params"]["id"] == 0:
            abort(404, "no item 0")
        return {"id": request["params"]["id"]}

    @server.register("POST /m/items")
    def metrics_add(request: dict[str, Any]) -> Any:
        return {}, 201

    @server.register("GET /m/boom")
    def metrics_boom(request: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    return server, webtest.TestApp(server)


def test_every_answer_is_counted_with_its_route_verb_and_status(
    measured: tuple[Server, webtest.TestApp],
) -> None:
    _, app = measured
    before = scrape(app)
    app.get("/m/items/1")
    app.get("/m/items/2")
    app.head("/m/items/3")
    app.get("/m/items/0", status=404)  # the handler's own 404
    app.post("/m/items", status=201)
    app.delete("/m/items", status=405)  # automatic answers
    app.options("/m/items", status=204)
    app.get("/m/nowhere", status=404)  # no route
    app.get("/m/boom", status=500, expect_errors=True)
    after = scrape(app)

    assert added(before, after, verb="GET", route="metrics_item", status="200") == 2
    assert added(before, after, verb="HEAD", route="metrics_item", status="200") == 1
    assert added(before, after, verb="GET", route="metrics_item", status="404") == 1
    assert added(before, after, verb="POST", route="metrics_add", status="201") == 1
    assert added(before, after, verb="DELETE", route="/m/items", status="405") == 1
    assert added(before, after, verb="OPTIONS", route="/m/items", status="204") == 1
    assert added(before, after, verb="GET", route="<unmatched>", status="404") >= 1
    assert added(before, after, verb="GET", route="metrics_boom", status="500") == 1
    # The first scrape is counted by the second, under the metrics route's pattern.
    assert added(before, after, verb="GET", route="/metrics", status="200") == 1
    histogram = ("microwsgi_request_duration_seconds_count",
                 frozenset({("verb", "GET"), ("route", "metrics_item")}))  # fmt: skip
    assert after[histogram] - before.get(histogram, 0.0) == 3
    in_progress = ("microwsgi_requests_in_progress", frozenset())
    assert after[in_progress] >= 1  # the scrape itself


def test_a_thousand_unknown_paths_add_no_series(measured: tuple[Server, webtest.TestApp]) -> None:
    _, app = measured
    before = scrape(app)
    for n in range(1000):
        app.get(f"/m/unknown/{n}", status=404)
        app.get(f"/m/items/x{n}", status=404)  # not an <int>: no route either
    after = scrape(app)
    assert len(after) == len(before)
    assert routes_of(after) == routes_of(before)
    assert not any("unknown" in route or "x1" in route for route in routes_of(after))
    got = requests(after, verb="GET", route="<unmatched>", status="404")
    assert got - requests(before, verb="GET", route="<unmatched>", status="404") == 2000


def test_invented_methods_share_one_label(measured: tuple[Server, webtest.TestApp]) -> None:
    server, app = measured
    before = scrape(app)
    unlinted = webtest.TestApp(server, lint=False)  # WebTest's lint refuses unknown methods
    for method in ("BREW", "WHEN", "PROPFIND"):
        unlinted.request("/m/items", method=method, status=405)
    after = scrape(app)
    got = requests(after, verb="OTHER", route="/m/items", status="405")
    assert got - requests(before, verb="OTHER", route="/m/items", status="405") == 3
    assert not any(dict(labels).get("verb") == "BREW" for _, labels in after)


def test_a_name_on_several_patterns_is_labelled_by_pattern() -> None:
    server = Server()
    server.metrics("/metrics-ambiguous")

    # PyMicroHTTP code reuses function names: both routes are called `metrics_handler`.
    @server.register("GET /amb/one")
    def metrics_handler(request: dict[str, Any]) -> Any:
        return "one"

    @server.register("GET /amb/two")  # type: ignore[no-redef]
    def metrics_handler(request: dict[str, Any]) -> Any:  # noqa: F811
        return "two"

    @server.register("GET /amb/named", name="amb_named")
    def named(request: dict[str, Any]) -> Any:
        return "named"

    app = webtest.TestApp(server)
    for path in ("/amb/one", "/amb/two", "/amb/named"):
        app.get(path)
    routes = routes_of(scrape(app, "/metrics-ambiguous"))
    assert {"/amb/one", "/amb/two", "amb_named"} <= routes
    assert "metrics_handler" not in routes


def test_routes_added_after_serving_are_labelled_by_their_names(
    measured: tuple[Server, webtest.TestApp],
) -> None:
    server, app = measured
    app.get("/m/items/1")  # compiled, and its label learnt

    @server.register("GET /m/late")
    def metrics_late(request: dict[str, Any]) -> Any:
        return "late"

    # A second route of the same function name: metrics_item now names two patterns.
    @server.register("GET /m/other/:id")
    def metrics_item(request: dict[str, Any]) -> Any:
        return "other"

    before = scrape(app)
    app.get("/m/late")
    app.get("/m/items/1")
    app.put("/m/late", status=405)
    after = scrape(app)

    assert added(before, after, verb="GET", route="metrics_late", status="200") == 1
    assert added(before, after, verb="GET", route="/m/items/:id<int>", status="200") == 1
    assert added(before, after, verb="PUT", route="/m/late", status="405") == 1


def test_the_server_shows_metrics_its_table_through_resources_and_match() -> None:
    server = Server()

    @server.get("/shop/:item", name="item")
    def item(request: dict[str, Any]) -> Any:
        return "item"

    @server.get("/shop/cart")
    def cart(request: dict[str, Any]) -> Any:
        return "cart"

    assert sorted(r.pattern for r in server.resources()) == ["/shop/:item", "/shop/cart"]
    matched = server.match("/shop/cart")
    assert matched is not None and matched.pattern == "/shop/cart"
    matched = server.match("/shop/caf\xc3\xa9")  # PATH_INFO: UTF-8 bytes read as latin-1
    assert matched is not None and matched.pattern == "/shop/:item"
    assert server.match("/elsewhere") is None


def test_several_servers_in_one_process_each_serve_metrics() -> None:
    first, second = Server(), Server()
    first.metrics()
    second.metrics("/-/metrics")

    @first.register("GET /first")
    def first_route(request: dict[str, Any]) -> Any:
        return "1"

    @second.register("GET /second")
    def second_route(request: dict[str, Any]) -> Any:
        return "2"

    one, two = webtest.TestApp(first), webtest.TestApp(second)
    one.get("/first")
    two.get("/second")
    # Either scrape shows both servers' series: one set of metrics per process.
    for samples in (scrape(one), scrape(two, "/-/metrics")):
        assert {"first_route", "second_route"} <= routes_of(samples)


def test_a_mounted_app_is_labelled_by_its_prefix() -> None:
    inner = Server()

    @inner.register("GET /x/:id")
    def inner_route(request: dict[str, Any]) -> Any:
        return "inner"

    outer = Server()
    outer.metrics()
    outer.mount("/mnt", inner)
    app = webtest.TestApp(outer)
    before = scrape(app)
    app.get("/mnt/x/1")
    app.get("/mnt/x/2")
    after = scrape(app)
    got = requests(after, verb="GET", route="/mnt", status="200")
    assert got - requests(before, verb="GET", route="/mnt", status="200") == 2


def test_a_stream_is_in_progress_until_the_server_closes_it() -> None:
    server = Server()
    server.metrics()

    @server.register("GET /stream-measured")
    def stream_measured(request: dict[str, Any]) -> Iterator[str]:
        yield "a"
        yield "b"

    app = webtest.TestApp(server)
    in_progress = ("microwsgi_requests_in_progress", frozenset())
    baseline = scrape(app)[in_progress]
    body = server(create_environ("/stream-measured"), lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"ab"
    assert scrape(app)[in_progress] == baseline + 1  # iterated, not yet closed
    before = requests(scrape(app), verb="GET", route="stream_measured", status="200")
    body.close()  # type: ignore[attr-defined]
    after = scrape(app)
    assert after[in_progress] == baseline
    assert requests(after, verb="GET", route="stream_measured", status="200") == before + 1


def test_a_workers_file_being_made_or_removed_leaves_the_scrape_whole(
    measured: tuple[Server, webtest.TestApp], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Multiprocess mode, as under gunicorn: one file of counts per worker. A worker creating
    # its file leaves it empty for a moment, and the master removes a dead worker's gauge file
    # whenever it reaps one; a scrape then listing the folder used to fail whole (a 500).
    mmap_dict = tools.require_extra("prometheus_client.mmap_dict")
    counts = mmap_dict.MmapedDict(str(tmp_path / "counter_4001.db"))
    key = mmap_dict.mmap_key("race_total", "race_total", ["worker"], ["a"], "requests")
    counts.write_value(key, 7.0, 0.0)
    counts.close()
    (tmp_path / "counter_4002.db").touch()  # being made: not sized yet
    listed = glob.glob

    def listing_a_removed_file(pattern: str) -> list[str]:
        return [*listed(pattern), str(tmp_path / "gauge_livesum_4003.db")]

    monkeypatch.setattr(glob, "glob", listing_a_removed_file)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    _, app = measured
    samples = scrape(app)
    assert samples[("race_total", frozenset({("worker", "a")}))] == 7.0


def test_the_scrape_speaks_openmetrics_when_asked(measured: tuple[Server, webtest.TestApp]) -> None:
    _, app = measured
    res = app.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert res.headers["Content-Type"].startswith("application/openmetrics-text")
    assert res.text.endswith("# EOF\n")


def test_the_metrics_route_is_internal(measured: tuple[Server, webtest.TestApp]) -> None:
    server, _ = measured
    resource = next(r for r in server.resources() if r.pattern == "/metrics")
    assert resource.endpoints["GET"].internal
    listed = [route for route in server.routes() if route["path"] == "/metrics"]
    assert listed[0]["handler"] == "server.metrics()"
    assert "/metrics" not in server.openapi()["paths"]
    assert "/m/items" in server.openapi()["paths"]


def test_other_buckets_in_the_same_process_are_refused() -> None:
    server = Server()
    with pytest.raises(ValueError, match="already has the buckets"):
        server.metrics(buckets=[0.1, 1.0])
    assert server.routes() == []
    server.metrics(buckets=None)  # the same as the first server's: accepted


def test_calling_it_twice_on_one_server_is_refused() -> None:
    server = Server()
    server.metrics()
    with pytest.raises(ValueError, match="'GET /metrics' is already registered"):
        server.metrics()


def test_without_prometheus_client_the_error_names_the_extra() -> None:
    message = tools.import_error_without(
        "prometheus_client", "Server().metrics()", setup="from microwsgi import Server"
    )
    assert "pip install 'microwsgi[metrics]'" in message
