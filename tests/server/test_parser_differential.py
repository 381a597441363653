"""The parser against h11's and gunicorn's on generated and mutated request streams.

Each round builds a stream of 1 to 4 pipelined requests from parts chosen to probe where HTTP/1.1
parsers part ways (framing fields, request-targets, Host, field syntax, chunk syntax, keep-alive),
sometimes mutated as the parser fuzz does, and reads it with three parsers: ours (whole, at random
splits and, when short, byte by byte), h11's and gunicorn's. A reading is the requests read in
full (method, target, body, keep-alive) and how it ended: out of input, connection closed after a
request that did not keep it alive, or a refusal.

It fails on a crash (anything but `ProtocolError` from our parser), on a reading that depends on
how the stream was split, on a request that we read in full where both peers refused the stream
before it, and on a request read differently from a peer that read it too (another target, or
another body: two framings of the same bytes). Where we are stricter than a peer, or read
keep-alive differently, the difference must be one named in `STRICTER` or `KEEP_ALIVE` below,
with the RFC rule that decides it; any other fails, so that a new class of difference is looked
at rather than ignored. Where a peer is stricter than us (and the other is not), it is counted.

It runs for MICROWSGI_FUZZ_SECONDS (default 3) from the seed MICROWSGI_FUZZ_SEED (default: a
new one each run, printed on failure), as the parser fuzz does:

    MICROWSGI_FUZZ_SECONDS=600 .venv/bin/pytest tests/server/test_parser_differential.py -q -s
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import tools
from test_parser_fuzz import _corpus, mutate
from test_protocol import split_at

from microwsgi.server.protocol import (
    NEED_DATA,
    PAUSED,
    Connection,
    Data,
    EndOfMessage,
    ProtocolError,
    RequestHead,
)

h11 = tools.require_extra("h11")
tools.require_extra("gunicorn.http.parser")
from gunicorn.config import Config  # noqa: E402 - after require_extra
from gunicorn.http.errors import NoMoreData  # noqa: E402 - after require_extra
from gunicorn.http.parser import RequestParser  # noqa: E402 - after require_extra

SECONDS = float(os.environ.get("MICROWSGI_FUZZ_SECONDS", "3"))
SEED = int(os.environ.get("MICROWSGI_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))


@dataclass(frozen=True)
class Difference:
    """A class of streams we read differently from a peer on purpose, and the rule that says so."""

    peers: frozenset[str]  # the peers that read these streams differently
    ours: str  # our refusal's message (a regex), or the keep-alive reading it names
    rule: str


def _differs(peers: str, ours: str, rule: str) -> Difference:
    return Difference(frozenset(peers.split()), ours, rule)


# Where we refuse what a peer reads on.
STRICTER = (
    _differs(
        "h11 gunicorn",
        "missing Host",
        "RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (h11 asks for Host only on "
        "exactly 1.1; 1.9 is 1.1 by RFC 9110 §6.2)",
    ),
    _differs(
        "h11 gunicorn",
        "invalid Host",
        'RFC 9112 §3.2: a Host whose value is not uri-host [ ":" port ] (RFC 9110 §7.2) is a 400',
    ),
    _differs(
        "h11",
        "unsupported version",
        "RFC 9110 §2.5, §15.6.6: a major version other than 1 is answered 505",
    ),
    _differs(
        "h11",
        "bare LF line ending",
        "RFC 9112 §2.2: a bare LF may be refused; a proxy in front may not end the line there",
    ),
    _differs(
        "h11 gunicorn", "obsolete line folding", "RFC 9112 §5.2: obs-fold may be refused with 400"
    ),
    _differs(
        "h11 gunicorn",
        "malformed request method",
        "RFC 9110 §9.1: a method is a token; like gunicorn we take only the registered shape "
        "(3-20 characters, no lower case)",
    ),
    _differs(
        "h11",
        "malformed request line",
        "RFC 9112 §3: method SP request-target SP HTTP-version, the target printable ASCII "
        "(RFC 3986 §2)",
    ),
    _differs(
        "h11 gunicorn",
        "invalid request target|asterisk-form|CONNECT needs|scheme|invalid authority",
        "RFC 9112 §3.2: a target in one of its four forms, each with its method (§3.2.3, "
        "§3.2.4); an absolute-form authority is a valid http(s) authority (RFC 9110 §4.2)",
    ),
    _differs(
        "h11 gunicorn",
        "repeated [a-z-]+ field",
        "RFC 9110 §5.3: a field whose grammar is not a list may not be repeated (gunicorn "
        "checks only Host and Content-Length)",
    ),
    _differs(
        "h11",
        "invalid Content-Length",
        "RFC 9110 §8.6: Content-Length is one number; a list, even of equal values, is "
        "refused as gunicorn refuses it",
    ),
    _differs(
        "h11",
        "both Content-Length and Transfer-Encoding",
        "RFC 9112 §6.3: both present may be a smuggling attempt; refused, not resolved in "
        "favour of chunked",
    ),
    _differs(
        "h11",
        "Transfer-Encoding on HTTP/1.0",
        "RFC 9112 §6.1: Transfer-Encoding in a 1.0 message is faulty framing",
    ),
    _differs(
        "h11",
        "chunked applied twice|not the final",
        "RFC 9112 §6.1, §6.3: chunked is the final transfer coding, applied once",
    ),
    _differs(
        "gunicorn",
        "unsupported transfer coding",
        "RFC 9112 §6.1: a coding the server does not implement is answered 501 (gunicorn "
        "passes gzip, deflate and compress to the application undecoded)",
    ),
    _differs(
        "h11",
        "unsupported expectation",
        "RFC 9110 §10.1.1: an expectation other than 100-continue may be answered 417",
    ),
    _differs(
        "h11",
        "invalid chunk extension",
        "RFC 9112 §7.1.1: chunk extensions must follow their grammar, as gunicorn holds them to it",
    ),
    _differs(
        "h11 gunicorn",
        "is not allowed as a trailer field",
        "RFC 9110 §6.5.1: fields that frame, route or authenticate a request may not be trailers",
    ),
    _differs(
        "h11 gunicorn",
        "invalid byte in header|invalid header name|header line without a colon",
        "RFC 9110 §5.5, §5.6.2: a field name is a token and a value VCHAR, obs-text and inner "
        "SP/HTAB; anything else is refused, not cleaned up",
    ),
    _differs(
        "h11",
        "chunk header too long|invalid chunk size",
        "RFC 9112 §7.1: chunk-size = 1*HEXDIG, at most 16 significant digits",
    ),
)
# Where a peer reads every request as we do but not whether the connection goes on after one.
KEEP_ALIVE = (
    _differs(
        "gunicorn",
        "connection options",
        "RFC 9112 §9.3, §9.6 and RFC 9110 §5.3, §7.6.1: the options are the whole list, over "
        "every Connection line; gunicorn reads only a lone token in the first line",
    ),
    _differs(
        "h11",
        "keep-alive on HTTP/1.0",
        "RFC 9112 §9.3, Appendix C.2.2: a 1.0 request with `Connection: keep-alive` may be "
        "answered on a persistent connection, as we do; h11 closes every 1.0 connection",
    ),
)


@dataclass
class Reading:
    """What one parser made of a stream."""

    # method, target, body and keep-alive of each request read in full
    requests: list[tuple[str, str, bytes, bool]] = field(default_factory=list)
    end: str = "more"  # "more" (out of input), "closed" (not kept alive) or "refused"
    why: str = ""  # the refusal
    heads: list[RequestHead] = field(default_factory=list)  # ours only: each request's head


def ours(chunks: list[bytes]) -> Reading:
    """Our reading of `chunks`, fed one after the other."""
    conn, reading = Connection(), Reading()
    head: RequestHead | None = None
    body = bytearray()
    for chunk in filter(None, chunks):  # b"" would be the end of the stream
        conn.receive_data(chunk)
        for _ in range(100_000):  # every call makes progress: a bound turns a hang into a failure
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                reading.end, reading.why = "refused", f"{exc.status} {exc.message}"
                return reading
            if event is NEED_DATA:
                break
            if event is PAUSED:
                if not conn.keep_alive:
                    reading.end = "closed"
                    return reading
                conn.start_next_cycle()
            elif type(event) is RequestHead:
                head, body = event, bytearray()
            elif type(event) is Data:
                body += event.data
            elif type(event) is EndOfMessage:
                assert head is not None
                reading.requests.append((head.method, head.target, bytes(body), head.keep_alive))
                reading.heads.append(head)
                conn.send_response(200, "OK", [("Content-Length", "0")])
                conn.send_end()
            else:
                raise AssertionError(f"unexpected {event!r} before the end of the stream")
        else:
            raise AssertionError("next_event made no progress")
    return reading


def h11_reads(raw: bytes) -> Reading:
    conn, reading = h11.Connection(h11.SERVER), Reading()
    if raw:  # b"" would be the end of the stream
        conn.receive_data(raw)
    request: h11.Request | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            reading.end, reading.why = "refused", f"{exc.error_status_hint} {exc}"
            return reading
        if event is h11.NEED_DATA:
            return reading
        if type(event) is h11.Request:
            request, body = event, bytearray()
        elif type(event) is h11.Data:
            body += event.data
        elif type(event) is h11.EndOfMessage:
            assert request is not None
            # A 200 to a CONNECT opens a tunnel: like us and gunicorn, h11 reads no more HTTP.
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            if conn.our_state is h11.SEND_BODY:
                conn.send(h11.EndOfMessage())
            keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
            target = request.target.decode("latin-1")
            reading.requests.append((request.method.decode("latin-1"), target, bytes(body), keep))
            if not keep:
                reading.end = "closed"
                return reading
            conn.start_next_cycle()
        else:
            raise AssertionError(f"unexpected {event!r} from h11 before the end of the stream")


def gunicorn_reads(raw: bytes) -> Reading:
    reading = Reading()
    parser = RequestParser(Config(), iter([raw]), ("127.0.0.1", 5000))
    try:
        for request in parser:
            body = request.body.read()
            declared = [value for name, value in request.headers if name == "CONTENT-LENGTH"]
            if declared and len(body) < int(declared[0]):
                break  # the end of our input is an EOF to gunicorn: it takes what came
            keep = not request.should_close()
            reading.requests.append((request.method, request.uri, body, keep))
            if not keep:
                reading.end = "closed"
                break
    except NoMoreData:
        pass  # out of input mid-request: gunicorn waits for more
    except Exception as exc:  # every gunicorn ParseException: a refusal
        reading.end, reading.why = "refused", repr(exc)
    return reading


# -- the streams ---------------------------------------------------------------------------

_METHODS = ["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT", "get", "M-SEARCH", "AB"]
_TARGETS = [
    "/", "/a/b?q=1&r=%20", "/x#frag", "//double", "/%ff", "/caf\xe9", "*", "h:443",
    "http://h/x?y", "http://h:8080", "https://u@h/p", "ftp://h/", "http:///x", "http://[::1]/",
    "/a b", "/\x7f", "",
]  # fmt: skip
_VERSIONS = ["HTTP/1.1"] * 8 + ["HTTP/1.0"] * 3 + ["HTTP/1.9", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1 "]
_HOSTS = [["h"]] * 6 + [[], ["h", "h"], [""], ["h:80"], ["[::1]:8"], ["h h"], ["a/b"], ["h:x"]]
_CONNECTION = [
    [], [], [], ["close"], ["keep-alive"], ["Close"], ["keep-alive, close"], ["close, keep-alive"],
    ["foo", "close"], ["foo", "keep-alive"], ["upgrade"], ["close,"], [", keep-alive"],
]  # fmt: skip
_TE = [
    "chunked", "Chunked", "chunked,", ",chunked", "chunked, ,", "", " ", "gzip, chunked",
    "chunked, gzip", "identity", "chunked, chunked", "chunkedx", "chunked\t",
]  # fmt: skip
_OTHER_FIELDS = [
    "X-A: b", "X-A:b", "X-A:  spaced  ", "X-A:", "X-A : b", " X-A: b", "X_A: b", "X-A: b\x00c",
    "X-A: caf\xe9", "X-A: a\tb", "Expect: 100-continue", "Expect: nothing", "Content-Type: a/b",
    "Upgrade: websocket", "Trailer: X-T", "X-A: \x7f",
]  # fmt: skip
_EXTENSIONS = ["", "", ";a=b", " ;x", ';q="1;2"', ";", ";a=", "; a = b", ";a=\x01"]
_TRAILERS = ["X-T: 1", "Content-Length: 1", "Host: h", "X-T:", "X-T : 1"]


def _framing(rng: random.Random, body: bytes) -> tuple[list[str], bytes]:
    """Framing fields for `body`, and the bytes that follow the head."""
    kind = rng.choice(["none", "none", "length", "length", "chunked", "chunked", "both", "odd"])
    if kind == "none":
        return [], b""
    if kind == "length" or (kind == "odd" and rng.random() < 0.5):
        spelled = rng.choice(["%d", "%d", "0%d", "000000000000000000000%d", "+%d", "%d, %d", "%d,"])
        value = spelled.replace("%d", str(len(body)))
        declared = [f"Content-Length: {value}"]
        if kind == "odd":
            declared.append(rng.choice([f"Content-Length: {len(body)}", "Content-Length: 1"]))
        return declared, body + rng.choice([b"", b"", b"", b"xyz"])
    te = [f"Transfer-Encoding: {rng.choice(_TE) if rng.random() < 0.4 else 'chunked'}"]
    if rng.random() < 0.1:
        te.append(f"Transfer-Encoding: {rng.choice(_TE)}")
    if kind == "both":
        te.insert(rng.randrange(len(te) + 1), f"Content-Length: {len(body)}")
    chunks = b""
    rest = body
    while rest:
        size = rng.randint(1, len(rest))
        piece, rest = rest[:size], rest[size:]
        spelled = rng.choice(["%x", "%X", "0%x", "0000000000000000%x"]) % size
        chunks += f"{spelled}{rng.choice(_EXTENSIONS)}\r\n".encode("latin-1") + piece + b"\r\n"
    trailers = "".join(f"{rng.choice(_TRAILERS)}\r\n" for _ in range(rng.choice([0, 0, 1, 2])))
    last = rng.choice(["0", "0", "00000000000000000000", "0;e=1"])
    return te, chunks + f"{last}\r\n{trailers}\r\n".encode("latin-1")


def request(rng: random.Random) -> bytes:
    """One request, usually well-formed, each part sometimes one of the shapes parsers differ on."""
    method = rng.choice(_METHODS) if rng.random() < 0.3 else rng.choice(["GET", "POST"])
    target = rng.choice(_TARGETS) if rng.random() < 0.3 else "/p?q=1"
    version = rng.choice(_VERSIONS)
    fields = [f"Host: {host}" for host in rng.choice(_HOSTS)]
    fields += [f"Connection: {value}" for value in rng.choice(_CONNECTION)]
    fields += [rng.choice(_OTHER_FIELDS) for _ in range(rng.choice([0, 0, 1, 2]))]
    body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 1, 5, 30])))
    framing, after = _framing(rng, body)
    fields += framing
    rng.shuffle(fields)
    if rng.random() < 0.05:
        fields.insert(rng.randrange(len(fields) + 1), " folded")
    ending = "\r\n" if rng.random() < 0.95 else rng.choice(["\n", "\r"])
    head = f"{method} {target} {version}{ending}" + "".join(f"{f}{ending}" for f in fields)
    lead = rng.choice([b"", b"", b"", b"\r\n", b"\r\n\r\n"])
    return lead + (head + ending).encode("latin-1") + after


def stream(rng: random.Random, corpus: list[bytes]) -> bytes:
    raw = b"".join(request(rng) for _ in range(rng.choice([1, 1, 2, 3, 4])))
    if rng.random() < 0.25:
        raw = mutate(rng, raw, corpus)
    return raw


# -- comparing the readings ----------------------------------------------------------------


def _explained(table: tuple[Difference, ...], peer: str, ours_says: str) -> Difference | None:
    for difference in table:
        if peer in difference.peers and re.search(difference.ours, ours_says):
            return difference
    return None


def _keep_alive_kinds(head: RequestHead) -> str:
    """What about `head` may make a peer read its keep-alive otherwise, as `KEEP_ALIVE` names
    it (one name per line)."""
    kinds = []
    options = [value for name, value in head.headers if name == "connection"]
    if len(options) > 1 or (options and "," in options[0]):
        kinds.append("connection options")  # not a lone token in one line
    if head.http_version == "1.0" and head.keep_alive:
        kinds.append("keep-alive on HTTP/1.0")
    return "\n".join(kinds)


def compare(raw: bytes, mine: Reading, peer: str, theirs: Reading, tally: Counter[str]) -> None:
    """Fail unless every way `theirs` differs from `mine` is a named difference."""
    for index, (a, b) in enumerate(zip(mine.requests, theirs.requests, strict=False)):
        assert a[:3] == b[:3], f"{peer} read request {index} as {b[:3]!r}, we as {a[:3]!r}"
        if a[3] != b[3]:
            found = _explained(KEEP_ALIVE, peer, _keep_alive_kinds(mine.heads[index]))
            assert found is not None, f"{peer} reads keep-alive of request {index} otherwise"
            tally[f"keep-alive vs {peer}: {found.rule[:40]}"] += 1
            return  # one of the two stopped reading there
    if len(mine.requests) > len(theirs.requests):
        assert theirs.end != "more", f"{peer} waits for more where we read a whole request"
        if theirs.end == "refused":
            tally[f"{peer} stricter: {theirs.why[:60]}"] += 1
    elif len(mine.requests) == len(theirs.requests) and theirs.end == "more" != mine.end:
        # The peer has not decided yet (it takes a whole head, or a whole line, before it
        # looks): nothing to compare. Our early refusals are the same as our late ones (the
        # split checks above, and the corpus replayed byte by byte).
        tally[f"{peer} waits for more where we {mine.end}"] += 1
    elif len(mine.requests) < len(theirs.requests) or mine.end != theirs.end:
        if mine.end == "refused" and theirs.end != "refused":
            found = _explained(STRICTER, peer, mine.why)
            assert found is not None, f"we refuse ({mine.why}) what {peer} reads on"
            tally[f"stricter than {peer}: {mine.why[4:40]}"] += 1
        elif theirs.end == "refused" and mine.end != "refused":
            tally[f"{peer} stricter: {theirs.why[:60]}"] += 1
        elif mine.end != theirs.end:
            raise AssertionError(f"we end {mine.end!r}, {peer} {theirs.end!r}")


def check(raw: bytes, rng: random.Random, tally: Counter[str]) -> None:
    mine = ours([raw])
    cuts = [rng.randint(0, len(raw)) for _ in range(rng.randint(1, 6))]
    assert ours(split_at(raw, cuts)) == mine, f"split at {sorted(cuts)}"
    if len(raw) <= 400:
        assert ours([bytes([b]) for b in raw]) == mine, "byte by byte"
    h11_reading, gunicorn_reading = h11_reads(raw), gunicorn_reads(raw)
    peers = (("h11", h11_reading), ("gunicorn", gunicorn_reading))
    for index in range(len(mine.requests)):
        both = all(r.end == "refused" and len(r.requests) <= index for _, r in peers)
        assert not both, f"we read request {index} in full; h11 and gunicorn refuse it"
    for peer, reading in peers:
        compare(raw, mine, peer, reading, tally)


_POST = b"POST / HTTP/1.1\r\nHost: h\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        _POST + b"Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
        _POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n0\r\n\r\n",
        _POST + b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        _POST + b"Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
        _POST + b"Transfer-Encoding: chunked, ,\r\n\r\n0\r\n\r\n",
    ],
)
def test_empty_elements_in_transfer_encoding_are_refused_as_the_peers_refuse_them(
    raw: bytes,
) -> None:
    for reading in (ours([raw]), h11_reads(raw), gunicorn_reads(raw)):
        assert (reading.requests, reading.end) == ([], "refused")
    assert ours([raw]).why == "501 empty element in Transfer-Encoding"


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"GET / HTTP/1.9\r\nHost: h\r\n\r\n", b""),
        (_POST + b"Content-Length: 0000000000000000000\r\n\r\n", b""),
        (_POST + b"Content-Length: 00000000000000000005\r\n\r\nhello", b"hello"),
        (
            _POST + b"Transfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
    ],
)
def test_what_the_rfc_says_to_accept_is_read_as_the_peers_read_it(raw: bytes, body: bytes) -> None:
    readings = [ours([raw]), h11_reads(raw), gunicorn_reads(raw)]
    assert [reading.requests[0][2] for reading in readings] == [body] * 3
    assert [reading.end for reading in readings] == ["more"] * 3
    assert readings[0].heads[0].http_version == "1.1"  # HTTP/1.9 too (RFC 9110 §6.2)


@pytest.mark.timeout(SECONDS + 60)  # a long run is longer than the suite's per-test timeout
def test_streams_read_as_h11_and_gunicorn_read_them_or_a_named_rule_says_why_not() -> None:
    rng = random.Random(SEED)
    corpus = _corpus()
    tally: Counter[str] = Counter()
    deadline = time.monotonic() + SECONDS
    rounds = 0
    while time.monotonic() < deadline:
        raw = stream(rng, corpus)
        try:
            check(raw, rng, tally)
        except Exception as exc:
            raise AssertionError(f"seed {SEED}, round {rounds}: {raw!r}") from exc
        rounds += 1
    print(f"parser vs h11 and gunicorn: {rounds} streams in {SECONDS:g} s, seed {SEED}")
    for what, count in tally.most_common():  # shown with -s
        print(f"  {count:6d}  {what}")
    assert rounds >= 20, "the time budget allowed no real run"
