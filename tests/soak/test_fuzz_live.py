"""Live fuzz: mutated and random requests sent to a running server, in batches.

Each case (a request from the parser corpus, tests/server/corpus/*.json, mutated one to three
times, or random bytes) goes to the server three ways, each on its own connection:

- whole, then the client hangs up (half-close), and reads every answer until the server closes;
- the same at random splits;
- whole, and the client then waits (up to `WINDOW`) without hanging up.

Whatever the bytes, the server must answer with well-formed responses, never a 500, and close
every connection within `CASE_TIMEOUT` once the client has hung up (no hang); the split must
not change the answers; and a server that closes a connection the client left open must have
said so in its last answer (a 4xx says `Connection: close`): never a close without an answer.
The statuses are compared up to a 408, the one answer that depends on time; a 408 in place of
answers the whole send got is right only when the client's own sending took the header timeout
or longer (on a loaded machine the split's pieces can): the server's clock starts at the first
byte it reads, so when the last byte was handed to the kernel sooner than that after the first,
every byte was there before the server's deadline, and a 408 is the server's fault.

After each batch a fresh well-formed request on a fresh connection is answered correctly, and
the server process is still alive. `--fuzz-seconds` (5 by default) bounds the run; the seed is
random unless `--fuzz-seed` is given, and is part of every failure message.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from soak_support import SHARE, SOAK_TARGETS, StartServer

from benchmarks.soak_http import Conn, Malformed, Response, ServerClosed
from benchmarks.soak_targets import RunningServer

pytestmark = pytest.mark.soak

CORPUS = Path(__file__).resolve().parents[1] / "server" / "corpus"
HEADER_TIMEOUT = 0.5  # the server's: an incomplete head gets its 408 quickly
WINDOW = 3 * HEADER_TIMEOUT + 1.0  # how long the waiting client waits before it hangs up
CASE_TIMEOUT = 15.0  # after the hang-up, the server must have closed by then
BATCH = 48
MAX_CASE = 100_000  # past the limits on heads (431), short enough for quick batches
# Bytes a mutation inserts: the separators, digits and words that framing depends on.
TOKENS = [
    b"\r\n", b"\n", b"\r", b"\x00", b" ", b"\t", b":", b";", b",", b"=", b"0", b"-1", b"+5",
    b"9" * 20, b"ff", b"chunked", b"gzip", b"identity", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0",
    b"\xff", b"\x80", b"%", b"%00", b"%2e%2e/", b"/../", b"*", b"http://h/", b"Host: h\r\n",
    b"Content-Length: 5\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n", b"Connection: close\r\n", b"Connection: keep-alive\r\n",
    b"0\r\n\r\n", b"5\r\nhello\r\n", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"\r\n\r\n",
]  # fmt: skip


def _corpus() -> list[bytes]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text())["cases"]:
            raw = "".join(case["raw"]).encode("latin-1")
            if raw:
                cases.append(raw)
    return cases


def mutate(corpus: list[bytes], rng: random.Random) -> bytes:
    """A corpus request changed one to three times, an untouched one, or random bytes."""
    roll = rng.random()
    if roll < 0.05:
        return rng.randbytes(rng.randrange(1, 300))
    data = bytearray(rng.choice(corpus))
    if roll < 0.15:
        return bytes(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        end = min(len(data), at + rng.randrange(1, 16))
        operation = rng.randrange(7)
        if operation == 0 and data:  # overwrite one byte
            data[min(at, len(data) - 1)] = rng.choice((rng.randrange(256), *b"\r\n :;\x00"))
        elif operation == 1:
            data[at:at] = rng.choice(TOKENS)
        elif operation == 2:
            del data[at:end]
        elif operation == 3:
            data[at:at] = data[at:end] * rng.randint(1, 4)
        elif operation == 4:  # past the limits on targets, fields and heads (414, 431)
            piece = data[at:end] or b"a"
            data[at:at] = piece * (rng.choice((9_000, 70_000)) // len(piece))
        elif operation == 5:  # the head of this case, the tail of another
            other = rng.choice(corpus)
            data = data[:at] + other[rng.randrange(len(other) + 1) :]
        else:
            del data[at:]
    return bytes(data[:MAX_CASE]) or b"\r\n"


@dataclass
class Outcome:
    """What the server did with one case on one connection."""

    statuses: list[int] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    closed_first: bool = False  # the server closed before the client hung up
    sending: float = 0.0  # seconds from the first send to the last byte handed to the kernel
    ended: str = ""  # how the reading ended: EOF, a reset, a malformed answer
    problems: list[str] = field(default_factory=list)

    def until_408(self) -> list[int]:
        return self.statuses[: self.statuses.index(408)] if 408 in self.statuses else self.statuses

    def agrees_with(self, whole: Outcome) -> bool:
        """Whether these answers are the whole send's, up to a 408 this client earned."""
        got, expected = self.until_408(), whole.until_408()
        if got == expected:
            return True
        # A 408 before answers the whole send got: the head took too long to arrive, which
        # only a client that took the header timeout to send it can have caused.
        return (
            408 in self.statuses and self.sending >= HEADER_TIMEOUT and got == expected[: len(got)]
        )


async def _read_answers(conn: Conn, outcome: Outcome) -> None:
    """Read responses until the server closes; what ends the reading is recorded."""
    while True:
        try:
            response = await conn.head()
            if response.status >= 200:
                # The app names the method: an answer to HEAD has no body (RFC 9110 §9.3.2).
                await conn.body(response, head=response.header("x-method") == "HEAD")
                outcome.statuses.append(response.status)
                outcome.responses.append(response)
        except ServerClosed as exc:
            outcome.ended = str(exc)
            return
        except Malformed as exc:
            outcome.problems.append(f"malformed answer: {exc}")
            return


async def _send(conn: Conn, data: bytes, pieces: list[bytes] | None) -> float:
    """Send `data` (in `pieces`, if given); how long that took, from before the first send."""
    began = time.monotonic()
    try:
        for piece in pieces or [data]:
            await conn.send(piece)
            if pieces:
                await asyncio.sleep(0)
    except ConnectionError:
        pass  # the server answered and closed before taking every byte: fine
    return time.monotonic() - began


async def _hang_up_form(
    address: tuple[str, int], data: bytes, pieces: list[bytes] | None
) -> Outcome:
    outcome = Outcome()
    conn = await Conn.open(address)
    try:
        outcome.sending = await _send(conn, data, pieces)
        conn.hang_up()
        try:
            await asyncio.wait_for(_read_answers(conn, outcome), CASE_TIMEOUT)
        except asyncio.TimeoutError:
            outcome.problems.append(f"not closed {CASE_TIMEOUT:g} s after the client hung up")
    finally:
        conn.close()
    return outcome


async def _waiting_form(address: tuple[str, int], data: bytes) -> Outcome:
    outcome = Outcome()
    conn = await Conn.open(address)
    try:
        outcome.sending = await _send(conn, data, None)
        reading = asyncio.ensure_future(_read_answers(conn, outcome))
        done, _ = await asyncio.wait([reading], timeout=WINDOW)
        if done:
            outcome.closed_first = True
        else:
            conn.hang_up()
            try:
                await asyncio.wait_for(reading, CASE_TIMEOUT)
            except asyncio.TimeoutError:
                outcome.problems.append(f"not closed {CASE_TIMEOUT:g} s after the client hung up")
    finally:
        conn.close()
    return outcome


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = (
        sorted({rng.randrange(1, len(data)) for _ in range(rng.randint(1, 6))})
        if len(data) > 1
        else []
    )
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _judge(whole: Outcome, split: Outcome, waiting: Outcome) -> list[str]:
    """What is wrong with the server's answers to one case (nothing, with luck)."""
    problems = []
    for name, outcome in (("whole", whole), ("split", split), ("waiting", waiting)):
        problems += [f"{name}: {problem}" for problem in outcome.problems]
        problems += [
            f"{name}: answered {status}"
            for status in outcome.statuses
            if status >= 500 and status not in (501, 505)  # an engine error: never due
        ]
    for name, outcome in (("the split", split), ("waiting", waiting)):
        if not outcome.agrees_with(whole):
            problems.append(
                f"{name} changed the answers: {whole.statuses} ({whole.ended})"
                f" -> {outcome.statuses} ({outcome.ended}), sent in {outcome.sending:.3f} s"
            )
    if waiting.closed_first and not (waiting.responses and waiting.responses[-1].closes):
        problems.append(f"closed without an answer (after {waiting.statuses})")
    return problems


async def _fresh_request(address: tuple[str, int], nonce: int) -> str | None:
    """None when a well-formed request on a new connection gets the right answer."""
    try:
        conn = await asyncio.wait_for(Conn.open(address), CASE_TIMEOUT)
        try:
            await conn.send(b"GET /small?n=%d HTTP/1.1\r\nHost: fuzz\r\n\r\n" % nonce)
            response = await asyncio.wait_for(conn.response(), CASE_TIMEOUT)
        finally:
            conn.close()
    except (OSError, asyncio.TimeoutError, Malformed, ServerClosed) as exc:
        return f"{type(exc).__name__}: {exc}"
    if (response.status, response.body) != (200, b"small %d" % nonce):
        return f"answered {response.status} {response.body[:80]!r}"
    return None


@dataclass
class FuzzRun:
    cases: int = 0
    batches: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


async def _fuzz(server: RunningServer, seconds: float, seed: int) -> FuzzRun:
    rng = random.Random(seed)
    corpus = _corpus()
    run = FuzzRun()
    deadline = time.monotonic() + seconds
    while run.batches == 0 or time.monotonic() < deadline:
        cases = [mutate(corpus, rng) for _ in range(BATCH)]
        outcomes = await asyncio.gather(
            *(
                asyncio.gather(
                    _hang_up_form(server.address, data, None),
                    _hang_up_form(server.address, data, _split(data, rng)),
                    _waiting_form(server.address, data),
                )
                for data in cases
            )
        )
        for data, (whole, split, waiting) in zip(cases, outcomes, strict=True):
            run.statuses.update(whole.statuses or [0])
            for problem in _judge(whole, split, waiting):
                run.failures.append(f"{data[:300]!r}: {problem}")
        run.cases += len(cases)
        run.batches += 1
        if server.proc.poll() is not None:
            run.failures.append(f"the server died (exit {server.proc.returncode})")
            break
        problem = await _fresh_request(server.address, run.batches)
        if problem is not None:
            run.failures.append(f"after batch {run.batches}, a fresh request: {problem}")
    return run


@pytest.mark.parametrize("target", SOAK_TARGETS)
def test_mutated_requests_never_break_the_live_server(
    target: str, start_server: StartServer, fuzz_seconds: float, pytestconfig: pytest.Config
) -> None:
    server = start_server(target, header_timeout=HEADER_TIMEOUT)
    seed = pytestconfig.getoption("--fuzz-seed")
    seed = random.randrange(1 << 32) if seed is None else seed
    run = asyncio.run(_fuzz(server, fuzz_seconds * SHARE[target], seed))
    summary = (
        f"seed {seed}: {run.cases} cases in {run.batches} batches; statuses of the whole"
        f" sends (0: no answer) {dict(sorted(run.statuses.items()))}"
    )
    print(summary)
    assert not run.failures, summary + "\n" + "\n".join(run.failures[:20])
    assert server.log().count("Traceback") == 0, server.log()[-3000:]
