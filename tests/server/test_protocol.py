"""Tests for microwsgi.server.protocol: the sans-IO HTTP/1.1 connection.

The request corpus lives in tests/server/corpus/*.json as data: each raw request with the events
(or error status) it must produce. Every case is replayed whole, byte by byte and at random
splits, and must give the same events each way.
"""

from __future__ import annotations

import http.client
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microwsgi.server.protocol import (
    FORBIDDEN_TRAILERS,
    NEED_DATA,
    PAUSED,
    SINGLETON_FIELDS,
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Limits,
    ProtocolError,
    RequestHead,
)

CORPUS = Path(__file__).parent / "corpus"

# Outcome records, compared as plain data: {"request": {...}}, {"data": str}, "end" or
# {"end": trailers}, "closed" (ConnectionClosed), "close" (not keep-alive: the driver stops),
# {"error": status}. Consecutive data records are merged, since splitting changes them.
Outcome = Any


def _request_record(req: RequestHead) -> dict[str, Any]:
    return {
        "method": req.method,
        "target": req.target,
        "http_version": req.http_version,
        "headers": [list(pair) for pair in req.headers],
        "content_length": req.content_length,
        "chunked": req.chunked,
        "expect_continue": req.expect_continue,
        "keep_alive": req.keep_alive,
        "path": req.path,
        "query": req.query,
        "authority": req.authority,
    }


def _drain(conn: Connection, out: list[Outcome]) -> bool:
    """Pull events until more data is needed; answer each request like a tiny server.

    Returns False once the conversation is over (error, peer closed, or not keep-alive).
    """
    for _ in range(10_000):  # every call makes progress; a bound turns a hang into a failure
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            out.append({"error": exc.status})
            return False
        if event is NEED_DATA:
            return True
        if event is PAUSED:
            if not conn.keep_alive:
                out.append("close")
                return False
            conn.start_next_cycle()
        elif isinstance(event, RequestHead):
            out.append({"request": _request_record(event)})
        elif isinstance(event, Data):
            assert event.data, "Data events are never empty"
            if out and isinstance(out[-1], dict) and "data" in out[-1]:
                out[-1] = {"data": out[-1]["data"] + event.data.decode("latin-1")}
            else:
                out.append({"data": event.data.decode("latin-1")})
        elif isinstance(event, EndOfMessage):
            out.append({"end": [list(t) for t in event.trailers]} if event.trailers else "end")
            conn.send_response(200, "OK", [("Content-Length", "0")])
            conn.send_end()
        else:
            assert isinstance(event, ConnectionClosed)
            out.append("closed")
            return False
    raise AssertionError("next_event made no progress")


def replay(chunks: list[bytes], eof: bool = False, limits: Limits | None = None) -> list[Outcome]:
    conn = Connection(limits or Limits())
    out: list[Outcome] = []
    for chunk in filter(None, chunks):  # b"" would mean EOF
        conn.receive_data(chunk)
        if not _drain(conn, out):
            return out
    if eof:
        conn.receive_data(b"")
        _drain(conn, out)
    return out


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


# -- the corpus ---------------------------------------------------------------------------

_REQUEST_DEFAULTS = {
    "http_version": "1.1",
    "content_length": None,
    "chunked": False,
    "expect_continue": False,
    "keep_alive": True,
}
_CHUNKED_POST = {
    "method": "POST",
    "target": "/",
    "headers": [["host", "h"], ["transfer-encoding", "chunked"]],
    "chunked": True,
}


_PARTS = ("path", "query", "authority")


def _parts(target: str) -> dict[str, Any]:
    """The split a plain origin-form target gets; other forms say theirs in the corpus."""
    path, _, query = target.partition("?")
    return {"path": path, "query": query, "authority": None}


def _expected(events: list[Outcome]) -> list[Outcome]:
    out: list[Outcome] = []
    for event in events:
        if event == "request-chunked":
            event = {"request": _CHUNKED_POST}
        if isinstance(event, dict) and "request" in event:
            given = event["request"]
            assert set(given) <= {"method", "target", "headers", *_REQUEST_DEFAULTS, *_PARTS}
            event = {"request": {**_REQUEST_DEFAULTS, **_parts(given["target"]), **given}}
        out.append(event)
    return out


def _load_corpus() -> list[Any]:
    params = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text("utf-8"))["cases"]:
            params.append(pytest.param(case, id=f"{path.stem}/{case['name']}"))
    return params


CASES = _load_corpus()


@pytest.mark.parametrize("case", CASES)
def test_corpus(case: dict[str, Any]) -> None:
    raw = "".join(case["raw"]).encode("latin-1")
    limits = Limits(**case.get("limits", {}))
    eof = case.get("eof", False)
    expected = _expected(case["events"])
    assert replay([raw], eof, limits) == expected, "whole"
    assert replay([bytes([b]) for b in raw], eof, limits) == expected, "byte by byte"
    pieces = [p.encode("latin-1") for p in case["raw"]]
    assert replay(pieces, eof, limits) == expected, "as written"
    rng = random.Random(case["name"])
    for _ in range(10):
        cuts = [rng.randrange(len(raw) + 1) for _ in range(rng.randrange(1, 8))]
        assert replay(split_at(raw, cuts), eof, limits) == expected, f"split at {cuts}"


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 100


# -- properties ---------------------------------------------------------------------------

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Fields the strategy must not generate at random: those that change the framing or the
# keep-alive decision, those that may appear only once, and (for trailers) those that may not
# be trailers at all. Each of these has its own corpus cases.
_RESERVED = {"transfer-encoding", "connection", "expect"} | SINGLETON_FIELDS
_field_names = st.text(_TCHARS, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in _RESERVED
)
_trailer_names = _field_names.filter(lambda n: n.lower() not in FORBIDDEN_TRAILERS)
_field_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20
).map(lambda v: v.strip(" "))
_targets = st.text("abcdefghijklmnopqrstuvwxyz0123456789/%?=&.-_~", max_size=30).map(
    lambda t: "/" + t
)


@st.composite
def _request_stream(draw: st.DrawFn) -> tuple[bytes, list[Outcome]]:
    """Pipelined requests as bytes, and the events a correct parser must produce."""
    raw = b""
    expected: list[Outcome] = []
    count = draw(st.integers(1, 4))
    for index in range(count):
        last = index == count - 1
        version = draw(st.sampled_from(["1.1", "1.0"]))
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "X-CUSTOM"]))
        target = draw(_targets)
        headers = draw(st.lists(st.tuples(_field_names, _field_values), max_size=4))
        if version == "1.1" or draw(st.booleans()):
            headers.insert(draw(st.integers(0, len(headers))), ("Host", "h"))
        keep_alive = not last or draw(st.booleans())
        if version == "1.0" and keep_alive:
            headers.append(("Connection", "keep-alive"))
        elif version == "1.1" and not keep_alive:
            headers.append(("Connection", "close"))
        body = draw(st.binary(max_size=80))
        kind = draw(
            st.sampled_from(
                ["none", "length", "chunked"] if version == "1.1" else ["none", "length"]
            )
        )
        trailers: list[tuple[str, str]] = []
        if kind == "length":
            headers.append(("Content-Length", str(len(body))))
            payload = body
        elif kind == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
            cuts = draw(st.lists(st.integers(0, len(body)), max_size=4))
            pieces = [p for p in split_at(body, cuts) if p]
            ext = draw(st.sampled_from(["", ";a=b", " ;x", ';q="1;2"']))
            payload = b"".join(b"%X%s\r\n%s\r\n" % (len(p), ext.encode(), p) for p in pieces)
            trailers = draw(st.lists(st.tuples(_trailer_names, _field_values), max_size=2))
            payload += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers)
            payload += b"\r\n"
        else:
            body = payload = b""
        head = f"{method} {target} HTTP/{version}\r\n"
        head += "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
        raw += draw(st.sampled_from([b"", b"\r\n"])) + head.encode("latin-1") + payload
        request = {
            "method": method,
            "target": target,
            "http_version": version,
            "headers": [[n.lower(), v] for n, v in headers],
            "content_length": len(body) if kind == "length" else None,
            "chunked": kind == "chunked",
            "expect_continue": False,
            "keep_alive": keep_alive,
            **_parts(target),
        }
        expected.append({"request": request})
        if body:
            expected.append({"data": body.decode("latin-1")})
        lowered = [[n.lower(), v] for n, v in trailers]
        expected.append({"end": lowered} if lowered else "end")
    expected.append("closed" if keep_alive else "close")
    return raw, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_request_stream(), st.lists(st.integers(0, 2000), max_size=12))
def test_any_split_of_pipelined_requests_gives_the_same_events(
    stream: tuple[bytes, list[Outcome]], cuts: list[int]
) -> None:
    raw, expected = stream
    assert replay([raw], eof=True) == expected
    assert replay(split_at(raw, cuts), eof=True) == expected


_FRAGMENTS = [
    b"GET", b"POST", b" ", b"/", b"/x?y", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\r",
    b"\n", b"Host: h", b"Host", b":", b"Content-Length: ", b"Transfer-Encoding: chunked",
    b"Connection: close", b"Expect: 100-continue", b"0", b"5", b"ff", b";e=1", b"hello", b"\x00",
    b"\t", b"\xff", b"-", b"\r\n\r\n",
]  # fmt: skip
_garbage = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map(b"".join),
    _request_stream()
    .map(lambda s: s[0])
    .flatmap(
        lambda raw: st.tuples(st.integers(0, len(raw)), st.binary(max_size=20)).map(
            lambda t: raw[: t[0]] + t[1] + raw[t[0] :]
        )
    ),
)
_small_limits = st.sampled_from(
    [
        Limits(),
        Limits(max_target=12, max_header_bytes=40, max_header_count=3, max_chunk_line=6,
               max_body_size=20, max_request_line=30, max_field_size=20),
    ]
)  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_garbage, st.lists(st.integers(0, 2000), max_size=12), st.booleans(), _small_limits)
def test_garbage_only_raises_protocol_error_and_split_does_not_matter(
    raw: bytes, cuts: list[int], eof: bool, limits: Limits
) -> None:
    whole = replay([raw], eof, limits)  # anything but ProtocolError propagates and fails
    assert replay(split_at(raw, cuts), eof, limits) == whole
    assert replay([bytes([b]) for b in raw], eof, limits) == whole


# -- the receiving side, beyond the corpus ------------------------------------------------


def test_public_shapes() -> None:
    assert Limits() == Limits(
        max_target=8190,
        max_request_line=None,
        max_header_bytes=65536,
        max_header_count=100,
        max_field_size=None,
        max_body_size=None,
        max_chunk_line=4096,
    )
    error = ProtocolError(431, "header section too large")
    assert (error.status, error.message) == (431, "header section too large")
    assert isinstance(Data(b"x"), Event) and not isinstance(NEED_DATA, Event)
    assert EndOfMessage().trailers == []


def _conn_with(raw: bytes, limits: Limits | None = None) -> tuple[Connection, list[object]]:
    """A connection fed ``raw`` and the events up to the first NEED_DATA or PAUSED."""
    conn = Connection(limits or Limits())
    conn.receive_data(raw)
    events: list[object] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return conn, events
        events.append(event)


GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def test_body_is_streamed_as_it_arrives_in_bounded_pieces() -> None:
    conn, events = _conn_with(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\nab")
    assert events[1:] == [Data(b"ab")]
    assert not conn.request_complete
    conn.receive_data(b"x" * 299998)
    pieces = []
    while (event := conn.next_event()) is not PAUSED:
        pieces.append(event)
    assert pieces[-1] == EndOfMessage([])
    sizes = [len(p.data) for p in pieces[:-1] if isinstance(p, Data)]
    assert sum(sizes) == 299998 and max(sizes) <= 65536
    assert conn.request_complete


def test_protocol_error_is_final() -> None:
    conn = Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n")
    with pytest.raises(ProtocolError) as first:
        conn.next_event()
    assert first.value.status == 400 and "400" in str(first.value)
    with pytest.raises(ProtocolError) as again:
        conn.next_event()
    assert (again.value.status, again.value.message) == (first.value.status, first.value.message)
    assert not conn.keep_alive


def test_data_after_eof_is_a_caller_bug() -> None:
    conn = Connection()
    conn.receive_data(b"")
    conn.receive_data(b"")
    assert conn.peer_closed
    with pytest.raises(RuntimeError):
        conn.receive_data(b"GET")
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()


def test_eof_after_pipelined_requests_still_answers_them() -> None:
    conn, _ = _conn_with(GET + GET)
    conn.receive_data(b"")
    assert conn.next_event() is PAUSED
    assert conn.pipelined
    conn.send_response(204, "No Content", [])
    conn.send_end()
    conn.start_next_cycle()
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.next_event() == EndOfMessage([])
    conn.send_response(204, "No Content", [])
    conn.send_end()
    conn.start_next_cycle()
    assert conn.next_event() == ConnectionClosed()


def test_three_pipelined_requests_in_one_buffer() -> None:
    raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(3))
    conn = Connection()
    conn.receive_data(raw)
    targets = []
    for _ in range(3):
        request = conn.next_event()
        assert isinstance(request, RequestHead)
        targets.append(request.target)
        assert conn.next_event() == EndOfMessage([])
        assert conn.next_event() is PAUSED  # the next request waits for this cycle
        conn.send_response(200, "OK", [("Content-Length", "0")])
        conn.send_end()
        conn.start_next_cycle()
    assert targets == ["/0", "/1", "/2"]
    assert conn.next_event() is NEED_DATA


def test_start_next_cycle_needs_both_sides_done_and_keep_alive() -> None:
    conn = Connection()
    with pytest.raises(RuntimeError):
        conn.start_next_cycle()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nh")
    assert isinstance(conn.next_event(), RequestHead)
    conn.send_response(200, "OK", [("Content-Length", "0")])
    conn.send_end()
    with pytest.raises(RuntimeError):  # body unread: the loop drains it first
        conn.start_next_cycle()
    assert conn.next_event() == Data(b"h")
    conn.receive_data(b"i")
    assert conn.next_event() == Data(b"i")
    assert conn.next_event() == EndOfMessage([])
    conn.start_next_cycle()

    conn, _ = _conn_with(GET)
    conn.send_response(200, "OK", [])
    with pytest.raises(RuntimeError):  # response unfinished
        conn.start_next_cycle()

    conn, _ = _conn_with(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    conn.send_response(200, "OK", [("Content-Length", "0")])
    conn.send_end()
    assert not conn.keep_alive
    with pytest.raises(RuntimeError):
        conn.start_next_cycle()


def test_byte_by_byte_feed_of_a_64k_head_is_linear() -> None:
    # 99 fields of ~650 bytes: just under the 64 KiB header cap. A parser that rescanned its
    # buffer per byte would do ~2 * 10**9 steps here and hit the test timeout.
    fields = b"".join(b"X-%02d: %s\r\n" % (i, b"v" * 640) for i in range(99))
    raw = b"GET /" + b"p" * 8000 + b" HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n"
    assert len(raw) - 8000 > 64000
    conn = Connection()
    for i in range(len(raw)):
        conn.receive_data(raw[i : i + 1])
        event = conn.next_event()
        if i < len(raw) - 1:
            assert event is NEED_DATA
    assert isinstance(event, RequestHead) and len(event.headers) == 100


def test_endless_head_is_refused_at_the_limit_without_buffering_more() -> None:
    conn = Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX: ")
    with pytest.raises(ProtocolError) as exc:
        for _ in range(100):
            conn.receive_data(b"a" * 1024)
            conn.next_event()
    assert exc.value.status == 431


def test_endless_empty_lines_are_refused_at_once() -> None:
    conn = Connection()
    conn.receive_data(b"\r\n")
    assert conn.next_event() is NEED_DATA  # one empty line is ignored (RFC 9112 §2.2)
    conn.receive_data(b"\r\n" * 100)
    with pytest.raises(ProtocolError) as exc:
        conn.next_event()
    assert exc.value.status == 400


def test_tls_handshake_is_refused_at_once() -> None:
    conn = Connection()
    conn.receive_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    with pytest.raises(ProtocolError) as exc:
        conn.next_event()
    assert exc.value.status == 400


# -- the sending side ---------------------------------------------------------------------


def _answer(
    raw: bytes, status: int, headers: list[tuple[str, str]], body: list[bytes], **kw: bool
) -> tuple[Connection, bytes]:
    conn, _ = _conn_with(raw)
    out = conn.send_response(status, "Whatever", headers, **kw)
    out += b"".join(conn.send_data(piece) for piece in body)
    return conn, out + conn.send_end()


def test_content_length_response_is_sent_as_is() -> None:
    conn, out = _answer(GET, 200, [("Content-Length", "5"), ("X-A", "1")], [b"he", b"", b"llo"])
    assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"
    assert conn.keep_alive and conn.response_complete
    conn.start_next_cycle()


def test_unknown_length_on_http11_is_chunked_without_empty_chunks() -> None:
    conn, out = _answer(GET, 200, [("Content-Type", "text/plain")], [b"hello", b"", b"!"])
    assert out == (
        b"HTTP/1.1 200 Whatever\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"
    )
    assert conn.keep_alive


def test_head_sends_no_body_but_keeps_content_length() -> None:
    head = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
    for raw, kw in ((head, {}), (GET, {"head": True})):
        conn, out = _answer(raw, 200, [("Content-Length", "5")], [b"hello"], **kw)
        assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 5\r\n\r\n"
        assert conn.keep_alive
    conn, out = _answer(head, 200, [], [b"hello"])
    assert out == b"HTTP/1.1 200 Whatever\r\n\r\n"  # neither chunked nor close-delimited
    assert conn.keep_alive


def test_204_and_304_have_no_body() -> None:
    conn, out = _answer(GET, 204, [("Content-Length", "0")], [b"ignored"])
    assert out == b"HTTP/1.1 204 Whatever\r\n\r\n"  # RFC 9110 §8.6: no Content-Length on 204
    assert conn.keep_alive
    conn, out = _answer(GET, 304, [("Content-Length", "10"), ("ETag", '"x"')], [b"ignored"])
    assert out == b'HTTP/1.1 304 Whatever\r\nContent-Length: 10\r\nETag: "x"\r\n\r\n'
    assert conn.keep_alive


def test_a_known_length_date_and_server_are_sent_unless_the_fields_have_them() -> None:
    conn, _ = _conn_with(GET)
    out = conn.send_response(200, "OK", [("X-A", "1")], length=3, date="D", server="S")
    assert out == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nDate: D\r\nServer: S\r\nContent-Length: 3\r\n\r\n"
    assert conn.send_data(b"abcdef") + conn.send_end() == b"abc" and conn.keep_alive
    conn, _ = _conn_with(GET)
    fields = [("date", "mine"), ("SERVER", "me"), ("Content-Length", "2")]
    out = conn.send_response(200, "OK", fields, length=3, date="D", server="S")
    assert out == b"HTTP/1.1 200 OK\r\ndate: mine\r\nSERVER: me\r\nContent-Length: 2\r\n\r\n"
    # No body, no length; a HEAD answer's length is that of the body a GET would get.
    head = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
    for raw, status, length in ((GET, 204, 5), (GET, 304, 5), (head, 200, 0)):
        conn, _ = _conn_with(raw)
        assert (
            conn.send_response(status, "X", [], length=length) == b"HTTP/1.1 %d X\r\n\r\n" % status
        )
    conn, _ = _conn_with(head)
    assert (
        conn.send_response(200, "OK", [], length=5)
        == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    )


def test_a_whole_body_is_sent_framed_and_ended_with_its_head() -> None:
    conn, _ = _conn_with(GET)
    out = conn.send_response(200, "OK", [], body=b"abc")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    assert conn.response_complete and conn.keep_alive
    conn, _ = _conn_with(GET)  # past the declared length: cut, as send_data cuts it
    out = conn.send_response(200, "OK", [("Content-Length", "2")], body=b"abc")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab" and conn.keep_alive
    conn, _ = _conn_with(GET)  # short of it: the client would wait, so no reuse
    out = conn.send_response(200, "OK", [("Content-Length", "5")], body=b"abc")
    assert out.endswith(b"\r\n\r\nabc") and conn.response_complete and not conn.keep_alive
    conn, _ = _conn_with(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    out = conn.send_response(200, "OK", [], body=b"abc")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n" and conn.response_complete


def test_the_sender_may_close_after_the_response() -> None:
    conn, _ = _conn_with(GET)
    out = conn.send_response(200, "OK", [], close=True, length=0)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert not conn.keep_alive


def test_http10_unknown_length_is_close_delimited() -> None:
    raw = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    conn, out = _answer(raw, 200, [], [b"abc", b"def"])
    assert out == b"HTTP/1.1 200 Whatever\r\nConnection: close\r\n\r\nabcdef"
    assert not conn.keep_alive


def test_http10_keep_alive_is_confirmed_when_granted() -> None:
    raw = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    conn, out = _answer(raw, 200, [("Content-Length", "3")], [b"abc"])
    assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
    assert conn.keep_alive
    conn, out = _answer(b"GET / HTTP/1.0\r\n\r\n", 200, [("Content-Length", "3")], [b"abc"])
    assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    assert not conn.keep_alive


def test_connection_close_from_client_or_application() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    conn, out = _answer(raw, 200, [("Content-Length", "0")], [])
    assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert not conn.keep_alive
    conn, out = _answer(GET, 200, [("Connection", "Close"), ("Content-Length", "0")], [])
    assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert not conn.keep_alive
    conn, out = _answer(GET, 200, [("connection", "keep-alive"), ("Content-Length", "0")], [])
    assert out == b"HTTP/1.1 200 Whatever\r\nContent-Length: 0\r\n\r\n"  # hop-by-hop: ours
    assert conn.keep_alive


def test_answering_a_protocol_error_closes() -> None:
    conn = Connection()
    conn.receive_data(b"GARBAGE\r\n\r\n")
    with pytest.raises(ProtocolError):
        conn.next_event()
    out = conn.send_response(400, "Bad Request", [("Content-Length", "3")])
    out += conn.send_data(b"bad") + conn.send_end()
    assert out == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad"
    conn = Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert isinstance(conn.next_event(), RequestHead)
    with pytest.raises(ProtocolError):
        conn.next_event()
    out = conn.send_response(400, "Bad Request", []) + conn.send_data(b"x") + conn.send_end()
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in out and not conn.keep_alive


def test_answer_before_any_request_closes() -> None:
    conn = Connection()  # e.g. a 408 for a head that never finished
    conn.receive_data(b"GET / HT")
    assert conn.next_event() is NEED_DATA
    out = conn.send_response(408, "Request Timeout", []) + conn.send_data(b"late") + conn.send_end()
    assert out == b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\nlate"


def test_short_content_length_body_forbids_reuse_and_long_one_is_cut() -> None:
    conn, out = _answer(GET, 200, [("Content-Length", "5")], [b"abc"])
    assert out.endswith(b"\r\n\r\nabc")
    assert not conn.keep_alive
    with pytest.raises(RuntimeError):
        conn.start_next_cycle()
    conn, out = _answer(GET, 200, [("Content-Length", "2")], [b"abc", b"def"])
    assert out.endswith(b"\r\n\r\nab")
    assert conn.keep_alive


def test_send_informational() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    conn, events = _conn_with(raw)
    assert isinstance(events[0], RequestHead) and events[0].expect_continue
    assert conn.send_informational() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send_informational(103) == b"HTTP/1.1 103 Early Hints\r\n\r\n"
    conn.send_response(200, "OK", [("Content-Length", "0")])
    with pytest.raises(RuntimeError):
        conn.send_informational()
    conn, _ = _conn_with(b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\n")
    assert conn.send_informational() == b""  # RFC 9110 §15.2: never to an HTTP/1.0 client
    with pytest.raises(ValueError):
        conn.send_informational(200)


@pytest.mark.parametrize(
    ("status", "reason", "headers"),
    [
        (200, "OK\r\nX: y", []),
        (200, "OK", [("X-A", "a\r\nSet-Cookie: x=1")]),
        (200, "OK", [("X-A", "a\nb")]),
        (200, "OK", [("X-A", "a\x00b")]),
        (200, "OK", [("X\r\nY", "1")]),
        (200, "OK", [("X A", "1")]),
        (200, "OK", [("", "1")]),
        (200, "OK", [("X-A", "\u20ac")]),
        (200, "OK", [("Transfer-Encoding", "chunked")]),
        (200, "OK", [("Content-Length", "-1")]),
        (200, "OK", [("Content-Length", "1"), ("Content-Length", "2")]),
        (100, "Continue", []),
        (103, "Early Hints", []),  # a 1xx is interim (RFC 9110 §15.2), never the answer
        (99, "Low", []),
        (600, "High", []),  # RFC 9110 §15: outside 100..599 is invalid
        (1000, "Big", []),
    ],
)
def test_send_response_refuses_what_cannot_go_on_the_wire(
    status: int, reason: str, headers: list[tuple[str, str]]
) -> None:
    conn, _ = _conn_with(GET)
    with pytest.raises(ValueError):
        conn.send_response(status, reason, headers)
    conn.send_response(200, "OK", [])  # nothing was committed by the refused call


def test_send_side_order_is_enforced() -> None:
    conn, _ = _conn_with(GET)
    with pytest.raises(RuntimeError):
        conn.send_data(b"x")
    with pytest.raises(RuntimeError):
        conn.send_end()
    conn.send_response(200, "OK", [("Content-Length", "0")])
    with pytest.raises(RuntimeError):
        conn.send_response(200, "OK", [])
    conn.send_end()
    with pytest.raises(RuntimeError):
        conn.send_data(b"x")


def test_mark_sent_counts_bytes_written_around_the_protocol() -> None:
    conn, _ = _conn_with(GET)
    conn.send_response(200, "OK", [("Content-Length", "10")])
    conn.mark_sent(4)
    assert conn.send_data(b"0123456789") == b"012345"
    conn.send_end()
    assert conn.keep_alive
    with pytest.raises(RuntimeError):
        conn.mark_sent(1)
    conn, _ = _conn_with(GET)
    conn.send_response(200, "OK", [])
    with pytest.raises(RuntimeError):  # a chunked body cannot be written around the framing
        conn.mark_sent(1)


class _FakeSocket:
    """Just enough of a socket for http.client.HTTPResponse to read a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


@settings(max_examples=200, deadline=None)
@given(
    version=st.sampled_from(["1.1", "1.0"]),
    method=st.sampled_from(["GET", "HEAD"]),
    client_close=st.booleans(),
    status=st.sampled_from([200, 201, 204, 304, 404, 500]),
    declare_length=st.booleans(),
    app_close=st.booleans(),
    body=st.lists(st.binary(max_size=30), max_size=4),
)
def test_responses_read_back_with_http_client(
    version: str,
    method: str,
    client_close: bool,
    status: int,
    declare_length: bool,
    app_close: bool,
    body: list[bytes],
) -> None:
    """An independent reader (the stdlib's client) agrees on the body and on reuse."""
    asked = "close" if client_close else "keep-alive"
    conn, _ = _conn_with(
        f"{method} / HTTP/{version}\r\nHost: h\r\nConnection: {asked}\r\n\r\n".encode()
    )
    headers = [("X-Test", "1")]
    if declare_length:
        headers.append(("Content-Length", str(sum(map(len, body)))))
    if app_close:
        headers.append(("Connection", "close"))
    wire = conn.send_response(status, "Any", headers)
    wire += b"".join(conn.send_data(piece) for piece in body) + conn.send_end()
    response = http.client.HTTPResponse(_FakeSocket(wire), method=method)  # type: ignore[arg-type]
    response.begin()
    no_body = method == "HEAD" or status in (204, 304)
    assert response.status == status
    assert response.read() == (b"" if no_body else b"".join(body))
    assert conn.keep_alive == (not response.will_close)
    assert conn.keep_alive == (
        not client_close and not app_close and (version == "1.1" or declare_length or no_body)
    )
    assert (response.getheader("Content-Length") is None) == (not declare_length or status == 204)
