"""A bounded fuzz of the parser: mutated corpus requests, replayed at random splits.

Each round takes a request from tests/server/corpus/*.json, mutates it (bytes flipped, HTTP
fragments inserted, slices dropped, repeated or spliced from another request), and replays it
whole, at random splits and (when short) byte by byte, with the default limits or very small
ones. Whatever the input, nothing but `ProtocolError` may escape, every replay must end (the
driver bounds its steps), and every way of splitting must give the same events.

It runs for MICROWSGI_FUZZ_SECONDS (default 3) in the normal suite; set it higher for a long
run, and MICROWSGI_FUZZ_SEED to replay one:

    MICROWSGI_FUZZ_SECONDS=600 .venv/bin/pytest tests/server/test_parser_fuzz.py -q
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from test_protocol import replay, split_at

from microwsgi.server.protocol import Limits

CORPUS = Path(__file__).parent / "corpus"
SECONDS = float(os.environ.get("MICROWSGI_FUZZ_SECONDS", "3"))
SEED = int(os.environ.get("MICROWSGI_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))

_BYTES = b"\r\n \t:;,#?/=\x00\x7f\xff0fF9-"
_FRAGMENTS = [
    b"\r\n", b"\r\n\r\n", b"\n", b"\r", b" ", b"GET / HTTP/1.1\r\n", b"Host: h\r\n",
    b"Host: evil\r\n", b"Content-Length: 5\r\n", b"Content-Length: 0\r\n",
    b"Content-Length: 1, 1\r\n", b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n", b"Expect: 100-continue\r\n", b"Content-Type: a/b\r\n",
    b"0\r\n\r\n", b"5\r\nhello\r\n", b"ffffffffffffffffff\r\n", b";ext=1", b';q="a\\"b"',
    b"http://h/x", b"*", b"#frag", b"?q=1", b"%00", b"\xc3\xa9", b"HTTP/1.0", b"HTTP/2.0",
    b"X-A: b\r\n", b" folded\r\n", b"OPTIONS", b"CONNECT h:443",
]  # fmt: skip
_SMALL = Limits(
    max_target=12,
    max_request_line=30,
    max_header_bytes=40,
    max_header_count=3,
    max_field_size=20,
    max_body_size=20,
    max_chunk_line=6,
)


def _corpus() -> list[bytes]:
    raws = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text("utf-8"))["cases"]:
            raws.append("".join(case["raw"]).encode("latin-1"))
    return raws


def mutate(rng: random.Random, raw: bytes, others: list[bytes]) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randint(0, len(data))
        if kind == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == 1 and data:
            data[min(at, len(data) - 1)] = rng.choice(_BYTES)
        elif kind == 2:
            data[at:at] = rng.choice(_FRAGMENTS)
        elif kind == 3:
            del data[at : at + rng.randint(1, 16)]
        elif kind == 4:
            piece = data[at : at + rng.randint(1, 40)]
            data[at:at] = piece * rng.randint(1, 3)
        else:
            other = rng.choice(others)
            data[at:] = other[rng.randint(0, len(other)) :]
    return bytes(data)


def check(raw: bytes, cuts: list[int], eof: bool, limits: Limits) -> None:
    """Replay `raw` three ways; anything but ProtocolError propagates out of `replay`."""
    whole = replay([raw], eof, limits)
    assert replay(split_at(raw, cuts), eof, limits) == whole, "split"
    if len(raw) <= 600:
        assert replay([bytes([b]) for b in raw], eof, limits) == whole, "byte by byte"


@pytest.mark.timeout(SECONDS + 60)  # a long run is longer than the suite's per-test timeout
def test_mutated_corpus_requests_at_random_splits() -> None:
    rng = random.Random(SEED)
    corpus = _corpus()
    deadline = time.monotonic() + SECONDS
    rounds = 0
    while time.monotonic() < deadline:
        raw = mutate(rng, rng.choice(corpus), corpus)
        cuts = [rng.randint(0, len(raw)) for _ in range(rng.randint(1, 8))]
        eof = rng.random() < 0.3
        limits = _SMALL if rng.random() < 0.3 else Limits()
        try:
            check(raw, cuts, eof, limits)
        except Exception as exc:
            raise AssertionError(
                f"seed {SEED}, round {rounds}: {raw!r} cut at {sorted(cuts)}, eof={eof}, "
                f"limits={limits}"
            ) from exc
        rounds += 1
    print(f"parser fuzz: {rounds} mutated requests in {SECONDS:g} s, seed {SEED}")  # with -s
    assert rounds >= 20, "the time budget allowed no real run"
