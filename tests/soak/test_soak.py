"""The soak: many concurrent clients of every kind against a live server, every answer checked.

One soak per target (`--soak-seconds`, 30 by default) runs the mix of `benchmarks/soak.py`:
keep-alive and pipelined requests, uploads and downloads of a few MiB with checksums, heads
sent a byte at a time, clients breaking off mid-body and mid-response, clients that never read,
and 300 idle connections; then SIGTERM with the idle connections open and a request in flight.
Each test below asserts one thing about that run, so a failure names what went wrong.
"""

from __future__ import annotations

import pytest
from soak_support import SHARE, SOAK_TARGETS, StartServer

from benchmarks.soak import SoakResult, run_soak
from benchmarks.soak_clients import KINDS, Mix
from benchmarks.soak_targets import Settings

pytestmark = pytest.mark.soak

MIX = Mix()
POOL = Settings().threads
# Threads besides the serving threads: the loop thread and the access-log writer (under
# gunicorn the loop thread alone: gunicorn's logger writes in the serving threads).
SERVICE_THREADS = {"microwsgi": 2, "gunicorn-microwsgi": 1}
# Descriptors besides the client connections (listener, epoll sets, wake pipes, logs), and
# connections the client has closed whose close the server has not seen yet.
FD_SLACK = 64
# RSS may grow by this much over the RSS with the idle connections open. The working set of
# the mix (the serving threads' buffers, the allocator's arenas) is about 10 MiB after 30 s:
# a leak of request bodies breaks the bound in the normal run, a slow creep in a long one
# (--soak-seconds 600).
RSS_GROWTH_MIB = 32
FRESH_REQUEST_MS = 100.0


@pytest.fixture(scope="module", params=SOAK_TARGETS)
def soak(
    request: pytest.FixtureRequest, start_server: StartServer, soak_seconds: float
) -> SoakResult:
    server = start_server(request.param)
    return run_soak(server, soak_seconds * SHARE[request.param], MIX, graceful=True)


def _notes(result: SoakResult) -> str:
    return "; ".join(
        f"{kind}: {note}" for kind, tally in result.kinds.items() for note in tally.notes
    )


def test_every_answer_is_right(soak: SoakResult) -> None:
    assert soak.wrong == 0, _notes(soak)


def test_no_connection_error_the_clients_did_not_cause(soak: SoakResult) -> None:
    assert soak.lost == 0, _notes(soak)


def test_every_kind_of_traffic_ran(soak: SoakResult) -> None:
    for kind in KINDS:
        tally = soak.kinds[kind]
        if kind in ("disconnect_body", "disconnect_response", "never_read"):
            assert tally.caused > 0, kind
        else:
            assert tally.ok > 0, kind
    assert soak.kinds["pipelined"].ok >= 20  # at least one whole burst


def test_threads_stay_within_the_pool(soak: SoakResult) -> None:
    assert soak.peak.threads <= POOL + SERVICE_THREADS[soak.target], soak.peak


def test_open_descriptors_follow_the_connections(soak: SoakResult) -> None:
    assert soak.peak.fds <= soak.peak_client_connections + FD_SLACK, soak.peak


def test_memory_stays_bounded(soak: SoakResult) -> None:
    growth_mib = (soak.peak.rss_kib - soak.baseline.rss_kib) / 1024
    assert growth_mib <= RSS_GROWTH_MIB, soak.rss_mib_series


def test_a_fresh_request_afterwards_is_answered_within_100_ms(soak: SoakResult) -> None:
    # Best of several tries, each on a new connection: one try can lose the CPU to another
    # process on a loaded machine; a server still busy with the soak loses every try.
    assert min(soak.fresh_request_ms) < FRESH_REQUEST_MS, soak.fresh_request_ms


def test_idle_connections_outlive_the_soak(soak: SoakResult) -> None:
    assert soak.idle_still_open == MIX.idle, _notes(soak)


def test_sigterm_answers_the_request_in_flight_and_exits_0(soak: SoakResult) -> None:
    graceful = soak.graceful
    assert graceful is not None
    assert graceful.in_flight_answered, graceful.notes
    assert graceful.idle_closed == MIX.idle, graceful
    assert graceful.exit_status == 0, graceful


def test_the_server_logged_no_traceback(soak: SoakResult) -> None:
    assert soak.log_tracebacks == 0
