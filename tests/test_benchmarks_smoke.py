"""The benchmark suite (benchmarks/) runs and produces well-formed results, so it never rots.

Each section runs through the real command (``python -m benchmarks --quick``) for a fraction
of a second. Nothing here asserts a speed: only that every figure exists, is positive, and that
every app gave the right answer before it was timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tools import require_extra, require_program
from werkzeug.test import create_environ

from microwsgi import Group

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = {"bare", "microwsgi", "falcon", "bottle", "flask"}


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The benchmarks package, importable from the repository root."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import benchmarks.apps
    import benchmarks.inprocess
    import benchmarks.instructions_report
    import benchmarks.servers
    import benchmarks.soak_report
    import benchmarks.wire

    return benchmarks


def run_section(tmp_path: Path, section: str, *options: str) -> tuple[dict[str, Any], str, str]:
    """Run one section in quick mode (with more `options`); its raw JSON results, the markdown
    file and the output."""
    out_json = tmp_path / "results.json"
    out_md = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--sections",
            section,
            "--output",
            str(out_md),
            "--json",
            str(out_json),
            *options,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out_json.read_text(encoding="utf-8"))
    return results, out_md.read_text(encoding="utf-8"), done.stdout


def run_quick(tmp_path: Path, section: str) -> tuple[dict[str, Any], str]:
    """Run one section in quick mode; return its raw JSON results and the markdown written."""
    results, markdown, printed = run_section(tmp_path, section)
    assert markdown in printed  # the printed report is the file, for the README
    return results, markdown


def test_dispatch_measures_every_framework_on_every_case(tmp_path: Path) -> None:
    for peer in ("falcon", "bottle", "flask"):
        require_extra(peer)
    results, markdown = run_quick(tmp_path, "dispatch")
    section = results["dispatch"]
    assert section["skipped"] == {}
    cases = {"static JSON", "params + query", "JSON POST", "typed param", "grouped route"}
    assert {(row["case"], row["framework"]) for row in section["rows"]} == {
        (case, fw) for case in cases for fw in FRAMEWORKS
    }
    for row in section["rows"]:
        assert row["best_ns"] > 0 and row["median_ns"] >= row["best_ns"]
        assert row["vs_bare"] > 0 and row["vs_falcon"] > 0
        assert row["per_sec"] == pytest.approx(1e9 / row["best_ns"])
    machine = results["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["python"].startswith("CPython")
    for heading in ("## Performance", "### Targets", "### 1. In-process dispatch"):
        assert heading in markdown
    assert "static JSON vs Falcon" in markdown


def test_router_scale_reports_each_size_relative_to_the_smallest(tmp_path: Path) -> None:
    results, markdown = run_quick(tmp_path, "scale")
    section = results["scale"]
    sizes = section["sizes"]
    assert len(sizes) >= 2 and sizes == sorted(sizes)
    microwsgi = {row["routes"]: row for row in section["rows"] if row["framework"] == "microwsgi"}
    assert set(microwsgi) == set(sizes)
    assert microwsgi[sizes[0]]["vs_smallest"] == pytest.approx(1.0)
    assert all(row["vs_smallest"] > 0 and row["build_s"] >= 0 for row in section["rows"])
    assert "### 2. Router scale" in markdown


@pytest.mark.e2e
def test_wire_runs_gunicorn_and_wrk_without_errors(tmp_path: Path) -> None:
    require_program("wrk", "the over-the-wire benchmark loads gunicorn with it")
    require_extra("gunicorn.app.wsgiapp")
    results, markdown = run_quick(tmp_path, "wire")
    section = results["wire"]
    rows = {row["framework"]: row for row in section["rows"]}
    assert set(rows) == {"bare", "microwsgi"}
    for row in rows.values():
        assert row["requests"] > 0 and row["requests_per_sec"] > 0
        assert row["socket_errors"] == 0 and row["non_2xx"] == 0
        assert row["cpu_us_per_request"] > 0
    assert rows["bare"]["vs_bare"] == pytest.approx(1.0)
    assert rows["bare"]["cpu_vs_bare"] == pytest.approx(1.0)
    assert "### 3. Over the wire" in markdown


@pytest.mark.e2e
def test_devserver_section_reports_the_dev_server_benchmark(tmp_path: Path) -> None:
    require_program("wrk", "the development server benchmark loads it with wrk")
    results, markdown = run_quick(tmp_path, "devserver")
    result = results["devserver"]["result"]
    assert set(result["servers"]) == {"microwsgi", "wsgiref", "werkzeug"}
    assert all(row["requests_per_sec"] > 0 for row in result["servers"].values())
    assert result["ratio_vs_wsgiref"] > 0 and result["idle"]["new_request_ok"] is True
    assert "### 4. Development server" in markdown


@pytest.mark.e2e
def test_servers_side_by_side_measure_each_server_or_say_why_not(
    tmp_path: Path, bench: Any
) -> None:
    require_program("wrk", "the servers side by side are loaded with wrk")
    require_extra("gunicorn.app.wsgiapp")  # two of the servers are gunicorn's
    results, markdown = run_quick(tmp_path, "servers")
    section = results["servers"]
    assert set(section["servers"]) | set(section["skipped"]) == set(bench.servers.SERVERS)
    assert {"microwsgi", "gunicorn-microwsgi", "gunicorn-gthread"} <= set(section["servers"])
    measured = set(section["servers"])
    rows = section["keepalive"] + section["many"]["rows"] + section["workers"]["rows"]
    assert {row["server"] for row in section["keepalive"]} == measured
    assert {row["server"] for row in section["many"]["rows"]} == measured
    for row in rows:
        assert row["requests_per_sec"] > 0 and row["cpu_us_per_request"] > 0
        assert row["p99_ms"] is not None and row["p99_ms"] > 0
        assert row["socket_errors"] == 0 and row["non_2xx"] == 0
    assert {row["workers"] for row in section["workers"]["rows"]} == {1, 2}
    for row in section["mixed"]["rows"]:
        assert row["wrong"] == 0 and row["lost"] == 0 and row["answers"] > 0
    assert "### 5. Servers side by side" in markdown
    assert "microwsgi worker vs gunicorn gthread" in markdown
    assert "microwsgi worker, -w 2 vs -w 1" in markdown


def test_route_table_has_the_measured_routes_last_and_no_duplicates(bench: Any) -> None:
    measured = list(bench.apps.MEASURED)
    for size in (len(measured), 10, 100, 10_000):
        table = bench.apps.route_table(size)
        assert len(table) == size == len(set(table))
        assert table[-len(measured) :] == measured
    with pytest.raises(ValueError, match=f"at least {len(measured)}"):
        bench.apps.route_table(len(measured) - 1)


def test_grouped_route_goes_through_groups_where_the_framework_has_them(
    bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    verb, template = bench.apps.GROUPED
    through: list[str] = []
    register_handler = Group.register_handler

    def spy(group: Group, spec: str, *args: Any, **kwargs: Any) -> None:
        through.append(f"{group.prefix} {spec}")
        register_handler(group, spec, *args, **kwargs)

    monkeypatch.setattr(Group, "register_handler", spy)
    microwsgi = bench.apps.build_app("microwsgi")
    assert through == [f"/api/v2 {verb} {template.removeprefix('/api/v2')}"]
    assert any(route["path"] == template for route in microwsgi.routes())
    require_extra("flask")  # last: the rest holds without it
    flask = bench.apps.build_app("flask")
    (rule,) = [rule for rule in flask.url_map.iter_rules() if rule.rule.startswith("/api/v2/")]
    assert rule.endpoint.count(".") == 2  # nested blueprints: outer.inner.view


def test_a_wrong_answer_is_refused_before_timing(bench: Any) -> None:
    def wrong(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"message": "Hello, world"}']

    case = bench.inprocess.CASES_BY_NAME["static JSON"]
    with pytest.raises(AssertionError, match="answered"):
        bench.inprocess.verify(wrong, case)
    bench.inprocess.verify(bench.apps.build_app("bare"), case)


def test_wrk_report_is_parsed(bench: Any) -> None:
    report = """Running 1s test @ http://127.0.0.1:1/hello
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.62ms  302.11us   6.02ms   90.12%
    Req/Sec     4.93k   301.22     5.21k    80.00%
  4911 requests in 1.00s, 0.87MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   4906.85
Transfer/sec:      0.87MB
"""
    result = bench.wire.parse_wrk(report)
    assert result.requests_per_sec == pytest.approx(4906.85)
    assert (result.requests, result.socket_errors, result.non_2xx) == (4911, 3, 4)
    assert result.latency_avg == "1.62ms" and result.latency_p99_ms is None
    distribution = "  Latency Distribution\n     50%  480.00us\n     99%    2.51ms\n"
    assert bench.wire.parse_wrk(report + distribution).latency_p99_ms == pytest.approx(2.51)


@pytest.mark.e2e
def test_an_instruction_count_is_made_and_adds_a_row_to_the_history(tmp_path: Path) -> None:
    # One case, the lightest: (a), one process under callgrind. Each case starts its own
    # servers under callgrind, which is what takes the time; (b) and (c) run the same counting
    # code around other servers (benchmarks.instructions), and their rows are written alike.
    require_program("valgrind", "the instruction counts run each server under callgrind")
    require_program("callgrind_control", "the instruction counts ask callgrind for dumps")
    earlier = "## Performance\n\nfigures of an earlier run, left as they are\n"
    (tmp_path / "RESULTS.md").write_text(earlier, encoding="utf-8")
    results, markdown, printed = run_section(tmp_path, "instructions", "--cases", "a")
    section = results["instructions"]
    assert section["skipped"] == {}
    [row] = section["rows"]
    assert row["case"] == "a" and row["requests"] == section["requests"] > 0
    assert row["per_request"] == pytest.approx(row["instructions"] / row["requests"])
    # Plausible: the counted part holds the requests and nothing else. One request through the
    # protocol, the bridge and the bare app costs tens of thousands of instructions (about
    # 84,000 interpreted, 58,000 compiled, when this was written), never a few hundred (the
    # dump came before the requests) nor millions (start-up or warm-up counted in).
    assert 10_000 < row["per_request"] < 1_000_000
    assert f"(a) {row['label']}: {row['per_request']:,.0f}" in printed
    assert markdown.startswith(earlier)  # the rest of the file is untouched
    history = markdown[len(earlier) :]
    assert history.strip().startswith("<!-- instructions -->")
    this_run = history.splitlines()[-2]  # this run's row, last in the table
    assert f" | {row['per_request']:,.0f} | - | - | " in this_run  # (b) and (c) not counted


@pytest.mark.e2e
def test_the_metrics_cost_is_counted_per_call(bench: Any, tmp_path: Path) -> None:
    require_program("valgrind", "the metrics cost is counted under callgrind")
    require_extra("prometheus_client")  # server.metrics() is what it counts
    from benchmarks import feature_cost

    server = feature_cost.build("metrics")
    feature_cost.call(server, 3)  # the measured calls are answered
    scrape = b"".join(server(create_environ("/metrics"), lambda *a: None))
    assert b'{route="user",status="200",verb="GET"}' in scrape
    few, more = (feature_cost.count("metrics", n, str(tmp_path)) for n in (10, 110))
    assert more > few  # the calls are counted, not only the start-up


def test_instruction_history_keeps_every_row_and_survives_a_full_rewrite(
    tmp_path: Path, bench: Any
) -> None:
    report = bench.instructions_report
    path = tmp_path / "RESULTS.md"
    path.write_text("## Performance\n\nsection 1\n", encoding="utf-8")
    machine = {"date": "2026-12-01 10:00 UTC", "python": "CPython 3.11.7", "command": "cmd"}

    def counted(per_request: int) -> dict[str, Any]:
        rows = [
            {"case": key, "per_request": per_request + n, "instructions": 1, "requests": 1}
            for n, key in enumerate("abc")
        ]
        return {"requests": 100, "rows": rows, "skipped": {}}

    report.add_row(counted(111_000), machine, path, write=True)
    report.add_row(counted(99_000), machine, path, write=True)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("## Performance\n\nsection 1\n")
    assert text.index("111,000 | 111,001 | 111,002") < text.index("99,000 | 99,001 | 99,002")
    assert text.count(report.EARLIER) == 1 and text.rstrip().endswith(report.END)
    rewritten = bench.soak_report.carry_section(
        "## Performance\n\nnew figures\n", path, markers=report.MARKERS
    )
    assert "new figures" in rewritten and "section 1" not in rewritten
    assert rewritten.count("111,000") == rewritten.count("99,000") == 1
