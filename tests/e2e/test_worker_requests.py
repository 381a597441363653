"""gunicorn's per-request settings under microwsgi.workers.Worker, each checked against what
gunicorn's own gthread worker does with the same settings and the same requests.

The request limits (414/431, and what their 0 means), forwarded_allow_ips with
secure_scheme_headers, forwarder_headers and header_map (the same wsgi.url_scheme, SCRIPT_NAME
and PATH_INFO), access_log_format (the same atoms), the pre_request/post_request hooks,
keepalive, loglevel. One gunicorn of each kind per set of settings, shared by the module.
"""

from __future__ import annotations

import re
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    HERE,
    Gunicorn,
    Response,
    fetch,
    free_port,
    raw_request,
    read_answer,
    wait_until,
)

pytestmark = pytest.mark.e2e

WORKER = "microwsgi.workers.Worker"
KINDS = {"gthread": "gthread", "microwsgi": WORKER}
PLAIN = HERE / "plain.conf.py"

Pair = dict[str, Gunicorn]


@pytest.fixture(scope="module")
def pair(module_gunicorn: Callable[..., Gunicorn]) -> Callable[..., Pair]:
    """gthread and microwsgi's worker, started with the same settings (once per module)."""

    def start(*options: str, config: Path = PLAIN, **more: Any) -> Pair:
        return {
            kind: module_gunicorn(
                "wsgi_app:app",
                worker_class=worker,
                threads=2,
                config=config,
                options=tuple(options),
                **more,
            )
            for kind, worker in KINDS.items()
        }

    return start


def ours(start: Callable[..., Gunicorn], *options: str, **more: Any) -> Gunicorn:
    """microwsgi's worker alone, with these settings (once per module)."""
    return start("wsgi_app:app", worker_class=WORKER, config=PLAIN, options=options, **more)


def request(path: str, *fields: str, method: str = "GET", body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: t", *fields, "Connection: close"]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def both(servers: Pair, data: bytes, source: str | None = None) -> dict[str, Response]:
    return {kind: raw_request(s.port, data, source=source) for kind, s in servers.items()}


# -- limit_request_line, limit_request_fields, limit_request_field_size ------------------------

LINE, FIELDS, FIELD_SIZE = 100, 5, 60


def at_line_limit(extra: int) -> bytes:
    # "GET " + target + " HTTP/1.1" is the request line: CRLF excluded, as gunicorn counts.
    return request("/pid?" + "a" * (LINE - len("GET /pid? HTTP/1.1") + extra))


def with_fields(count: int) -> bytes:
    # Host and Connection are two of the fields.
    return request("/pid", *[f"X-{i}: 1" for i in range(count - 2)])


def with_field_of(size: int) -> bytes:
    # A field line counted with its CRLF, as gunicorn counts it.
    return request("/pid", "X-A: " + "b" * (size - len("X-A: \r\n")))


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (at_line_limit(0), 200),
        (at_line_limit(1), 414),
        (with_fields(FIELDS), 200),
        (with_fields(FIELDS + 1), 431),
        (with_field_of(FIELD_SIZE), 200),
        (with_field_of(FIELD_SIZE + 1), 431),
    ],
    ids=["line-at", "line-over", "fields-at", "fields-over", "field-at", "field-over"],
)
def test_request_limits_answer_as_gthread_does(
    pair: Callable[..., Pair], data: bytes, status: int
) -> None:
    servers = pair(
        f"--limit-request-line={LINE}",
        f"--limit-request-fields={FIELDS}",
        f"--limit-request-field_size={FIELD_SIZE}",
    )
    answers = both(servers, data)
    assert {kind: answer.status for kind, answer in answers.items()} == {
        "gthread": status,
        "microwsgi": status,
    }


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("/pid?" + "a" * 20_000), 200),  # no request-line limit
        (request("/pid", *[f"X-{i}: 1" for i in range(150)]), 200),  # gunicorn's 32768 cap
        (with_field_of(8190), 200),  # gunicorn's code takes a field size of 0 as 8190
        (with_field_of(8191), 431),
    ],
    ids=["long-line", "many-fields", "field-8190", "field-8191"],
)
def test_zero_limits_mean_what_they_mean_to_gthread(
    pair: Callable[..., Pair], data: bytes, status: int
) -> None:
    servers = pair(
        "--limit-request-line=0", "--limit-request-fields=0", "--limit-request-field_size=0"
    )
    answers = both(servers, data)
    assert {kind: answer.status for kind, answer in answers.items()} == {
        "gthread": status,
        "microwsgi": status,
    }


# -- forwarded_allow_ips, secure_scheme_headers, forwarder_headers, header_map ------------------

SEEN = ("wsgi.url_scheme", "SCRIPT_NAME", "PATH_INFO", "HTTP_SCRIPT_NAME", "HTTP_X_CUSTOM")

FORWARDED = {
    "none": request("/environ"),
    "proto-https": request("/environ", "X-Forwarded-Proto: https"),
    "proto-http": request("/environ", "X-Forwarded-Proto: http"),
    "ssl-on": request("/environ", "X-Forwarded-Ssl: on"),
    "protocol-ssl": request("/environ", "X-Forwarded-Protocol: ssl"),
    "proto-twice": request("/environ", "X-Forwarded-Proto: https", "X-Forwarded-Proto: https"),
    "contradiction": request("/environ", "X-Forwarded-Proto: https", "X-Forwarded-Ssl: off"),
    "script-name": request("/api/environ", "SCRIPT_NAME: /api"),
    "script-name-elsewhere": request("/environ", "SCRIPT_NAME: /api"),
    "underscore": request("/environ", "X_Custom: 1"),
}


def seen(answer: Response) -> tuple[int, dict[str, Any] | None]:
    if answer.status != 200:
        return answer.status, None
    environ = answer.json()
    return answer.status, {key: environ.get(key) for key in SEEN}


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.3"], ids=["trusted", "untrusted"])
@pytest.mark.parametrize("data", FORWARDED.values(), ids=FORWARDED.keys())
def test_forwarded_scheme_and_headers_reach_the_environ_as_with_gthread(
    pair: Callable[..., Pair], data: bytes, source: str
) -> None:
    servers = pair("--forwarded-allow-ips=127.0.0.1")  # the client at 127.0.0.3 is not trusted
    answers = {kind: seen(answer) for kind, answer in both(servers, data, source).items()}
    assert answers["microwsgi"] == answers["gthread"]


def test_what_forwarding_gives_is_what_is_expected(pair: Callable[..., Pair]) -> None:
    # The comparison above could pass with both servers wrong: these are the values themselves.
    servers = pair("--forwarded-allow-ips=127.0.0.1")["microwsgi"]

    def ask(name: str, source: str = "127.0.0.1") -> tuple[int, dict[str, Any] | None]:
        return seen(raw_request(servers.port, FORWARDED[name], source=source))

    assert ask("proto-https")[1]["wsgi.url_scheme"] == "https"  # type: ignore[index]
    assert ask("proto-https", "127.0.0.3")[1]["wsgi.url_scheme"] == "http"  # type: ignore[index]
    assert ask("ssl-on")[1]["wsgi.url_scheme"] == "https"  # type: ignore[index]
    assert ask("contradiction")[0] == 400
    mounted = ask("script-name")[1]
    assert mounted is not None
    assert (mounted["SCRIPT_NAME"], mounted["PATH_INFO"]) == ("/api", "/environ")
    assert ask("script-name-elsewhere")[0] == 500  # gunicorn's "not under SCRIPT_NAME"
    assert ask("underscore")[1]["HTTP_X_CUSTOM"] is None  # type: ignore[index]


CUSTOM = textwrap.dedent(
    """
    control_socket_disable = True
    forwarded_allow_ips = "*"
    secure_scheme_headers = {"X-SCHEME": "secure"}
    header_map = "refuse"
    """
)


@pytest.mark.parametrize(
    "data",
    [
        request("/environ", "X-Scheme: secure"),
        request("/environ", "X-Scheme: plain"),
        request("/environ", "X-Forwarded-Proto: https"),  # no longer a scheme header
        request("/environ", "X_Custom: 1"),  # refused
        request("/api/environ", "SCRIPT_NAME: /api"),  # a forwarder header: allowed
    ],
    ids=["custom-secure", "custom-plain", "default-header", "refused", "forwarder"],
)
def test_custom_scheme_headers_and_refused_names_behave_as_with_gthread(
    pair: Callable[..., Pair], tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    config = tmp_path_factory.getbasetemp() / "custom.conf.py"
    if not config.exists():
        config.write_text(CUSTOM)
    servers = pair(config=config)
    answers = {kind: seen(answer) for kind, answer in both(servers, data, "127.0.0.3").items()}
    assert answers["microwsgi"] == answers["gthread"]
    if b"X_Custom" in data:
        assert answers["microwsgi"][0] == 400
    if b"secure" in data:
        assert answers["microwsgi"][1]["wsgi.url_scheme"] == "https"  # type: ignore[index]


# -- access_log_format -------------------------------------------------------------------------

SAME_ATOMS = (
    '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s '
    "%({x-test}i)s %({content-type}o)s %({query_string}e)s"
)
VARYING_ATOMS = "%(t)s %(T)s %(D)s %(M)s %(L)s %(p)s"


def test_access_log_lines_have_gthreads_atoms(pair: Callable[..., Pair]) -> None:
    servers = pair(f"--access-logformat={SAME_ATOMS} | {VARYING_ATOMS}")
    fields = ("X-Test: probe", "Referer: http://r.example/", "User-Agent: ua/1")
    auth = "Authorization: Basic YWRhOnNlY3JldA=="  # ada:secret
    sent = [
        request("/echo?x=1", *fields, auth, method="POST", body=b"hello"),
        request("/missing?y=2", *fields),
        request("/boom", *fields),
    ]
    lines: dict[str, list[str]] = {}
    for kind, server in servers.items():
        start = len(access_lines(server))
        for count, data in enumerate(sent, start + 1):
            raw_request(server.port, data)
            # A line is written after its answer: wait for it, to keep the lines in order.
            wait_until(lambda: len(access_lines(server)) >= count, 10, f"{kind}'s access line")  # noqa: B023
        lines[kind] = access_lines(server)[start : start + 3]
    same = {kind: [line.split(" | ")[0] for line in found] for kind, found in lines.items()}
    # The error page of a 500 is each server's own: its length is the one difference.
    assert same["microwsgi"][:2] == same["gthread"][:2]
    assert same["microwsgi"][0] == (
        '127.0.0.1 - ada "POST /echo?x=1 HTTP/1.1" 200 5 5 "http://r.example/" "ua/1" POST '
        "/echo x=1 HTTP/1.1 probe text/plain x=1"
    )
    assert same["microwsgi"][2].startswith('127.0.0.1 - - "GET /boom HTTP/1.1" 500 ')
    for line in lines["microwsgi"]:
        varying = line.split(" | ")[1]
        assert re.fullmatch(r"\[[^]]+\] \d+ \d+ \d+ \d+\.\d{6} <\d+>", varying), line


def access_lines(server: Gunicorn) -> list[str]:
    text = server.access_log.read_text() if server.access_log.exists() else ""
    return text.splitlines()


# -- pre_request and post_request ------------------------------------------------------------

HOOKS = textwrap.dedent(
    """
    control_socket_disable = True

    def pre_request(worker, req):
        fields = sorted(pair for pair in req.headers if pair[0].startswith("X-"))
        worker.log.info("pre|%s|%s|%s|%s|%s|%s", req.method, req.uri, req.path, req.query,
                        req.version, fields)
        if req.path == "/refused":
            raise RuntimeError("refused by pre_request")

    def post_request(worker, req, environ, resp):
        worker.log.info("post|%s|%s|%s|%s|%s", req.path, environ["PATH_INFO"],
                        environ["QUERY_STRING"], resp.status, resp.sent)
    """
)


def test_pre_and_post_request_hooks_see_what_they_see_under_gthread(
    pair: Callable[..., Pair], tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = tmp_path_factory.getbasetemp() / "hooks.conf.py"
    if not config.exists():
        config.write_text(HOOKS)
    servers = pair(config=config)
    sent = [
        request("/echo?a=1&b=%20", "X-One: 1", method="POST", body=b"body"),
        request("/missing", "X-Two: 2"),
        request("/refused"),
    ]
    said: dict[str, list[str]] = {}
    for kind, server in servers.items():
        statuses = [raw_request(server.port, data).status for data in sent]
        assert statuses == [200, 404, 500], kind
        # post_request runs after the answer is sent: wait for the lines.
        server.wait_for_log("post|/echo|")
        server.wait_for_log("post|/missing|")
        # Sorted: a post_request line may come after the next request's pre_request line.
        # After a failing pre_request, gthread's post_request gets no environ: left out.
        lines = re.findall(r"\] ((?:pre|post)\|.*)", server.log())
        said[kind] = sorted(line for line in lines if not line.startswith("post|/refused"))
    assert said["microwsgi"] == said["gthread"]
    assert said["microwsgi"] == [
        "post|/echo|/echo|a=1&b=%20|200 OK|4",
        "post|/missing|/missing||404 Not Found|9",
        "pre|GET|/missing|/missing||(1, 1)|[('X-TWO', '2')]",
        "pre|GET|/refused|/refused||(1, 1)|[]",
        "pre|POST|/echo?a=1&b=%20|/echo|a=1&b=%20|(1, 1)|[('X-ONE', '1')]",
    ]


# -- keepalive ---------------------------------------------------------------------------------


def test_keepalive_keeps_a_connection_that_long_then_closes_it_silently(
    module_gunicorn: Callable[..., Gunicorn],
) -> None:
    app = ours(module_gunicorn, "--keep-alive=1")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        ports = []
        for _ in range(3):
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
            ports.append(read_answer(reader).split()[-1])
        assert len(set(ports)) == 1
        # Then nothing: the server closes the idle connection, without an answer (no 408).
        assert reader.read() == b""


def test_keepalive_0_closes_after_every_answer(
    module_gunicorn: Callable[..., Gunicorn],
) -> None:
    app = ours(module_gunicorn, "--keep-alive=0")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = sock.makefile("rb").read()  # to the end: the server closes
    assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close\r\n" in answer


# -- loglevel ----------------------------------------------------------------------------------


def test_loglevel_debug_shows_the_default_pre_request_line(pair: Callable[..., Pair]) -> None:
    servers = pair("--log-level=debug")
    for server in servers.values():
        assert fetch(server.port, "/pid?q=1").status == 200
        server.wait_for_log("[DEBUG] GET /pid\n")  # gunicorn's default pre_request hook


def test_loglevel_warning_keeps_info_out_and_errors_in(
    module_gunicorn: Callable[..., Gunicorn],
) -> None:
    # Without the info line that says where it listens: a port chosen in advance.
    server = ours(module_gunicorn, "--log-level=warning", binds=(f"127.0.0.1:{free_port()}",))
    assert fetch(server.port, "/boom").status == 500
    server.wait_for_log("RuntimeError: a bug in a plain WSGI app")
    assert "[INFO]" not in server.log()


# -- statsd, sendfile, multiprocess -----------------------------------------------------------


def test_statsd_counts_the_requests(module_gunicorn: Callable[..., Gunicorn]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as metrics:
        metrics.bind(("127.0.0.1", 0))
        metrics.settimeout(20)
        address = f"127.0.0.1:{metrics.getsockname()[1]}"
        app = ours(module_gunicorn, f"--statsd-host={address}")
        assert fetch(app.port, "/pid").status == 200
        received = b""
        while b"gunicorn.request.status.200:1|c" not in received:
            received += metrics.recv(4096) + b"\n"
        assert b"gunicorn.requests:1|c" in received


@pytest.mark.parametrize(
    ("options", "framing"),
    [((), "Content-Length"), (("--no-sendfile",), "Transfer-Encoding")],
    ids=["sendfile", "no-sendfile"],
)
def test_sendfile_false_reads_files_instead(
    module_gunicorn: Callable[..., Gunicorn], options: tuple[str, ...], framing: str
) -> None:
    app = ours(module_gunicorn, *options)
    answer = fetch(app.port, "/file")
    assert answer.body == (HERE / "wsgi_app.py").read_bytes()
    # os.sendfile needs the length up front; a file read block by block goes out chunked.
    assert framing in answer.headers


def test_wsgi_multiprocess_says_whether_there_are_several_workers(
    module_gunicorn: Callable[..., Gunicorn],
) -> None:
    for workers in (1, 2):
        app = ours(module_gunicorn, workers=workers)
        assert fetch(app.port, "/environ").json()["wsgi.multiprocess"] is (workers > 1)
