"""The soak's clients: every kind of traffic, each answer checked, on asyncio streams.

`Clients(address, mix, seed)` holds the clients of one soak run and what they saw (a `Tally`
per kind, the latencies of the small keep-alive requests); `await clients.run(kinds, seconds)`
runs one task per client of the chosen kinds until the time is up:

- keep-alive clients: small requests one after another (their latency is what p50/p99 mean);
- pipelining clients: bursts of 20-50 requests in one write, answers checked in order;
- uploaders: bodies up to a few MiB, Content-Length or chunked in random chunk sizes, whose
  SHA-256 the app verifies; downloaders: bodies up to a few MiB, with or without a length;
- slow clients sending the request head a byte at a time;
- clients that break off mid-body or mid-response, by FIN or by reset (errors the test causes);
- clients that ask for big answers and never read them, then reset;
- idle connections (`open_idle`, half of them after one answered request), checked at the end
  by `check_idle`.

A wrong answer, or a connection error the client did not cause, is counted and noted; it
never stops the soak. Measuring the server and running the whole soak is `soak.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, TypeVar

from benchmarks.soak_app import SEEDS, download_blocks
from benchmarks.soak_http import Conn, Malformed, Response

__all__ = ["KINDS", "REQUEST_TIMEOUT", "Clients", "Mix", "Tally"]

# Far above any real answer time: only an answer that never comes reaches it.
REQUEST_TIMEOUT = 60.0
FRESH_TRIES = 5
BYTE_GAP = 0.002  # between the bytes of a slow client's request head
HOST = "Host: soak\r\n"
KINDS = (
    "keepalive",
    "pipelined",
    "upload",
    "download",
    "slow_headers",
    "disconnect_body",
    "disconnect_response",
    "never_read",
    "idle",
)

# What a client step does with its connection afterwards.
KEEP, CLOSE, RESET = "keep", "close", "reset"

T = TypeVar("T")
Step = Callable[[Conn, random.Random], Awaitable[str]]


@dataclass(frozen=True)
class Mix:
    """How many clients of each kind, and the largest bodies."""

    # As many keep-alive clients as the server has threads, so each could have its own.
    keepalive: int = 8
    pipelined: int = 2
    # The big transfers, the breaks and the non-readers together outnumber 8 serving threads.
    upload: int = 3
    download: int = 2
    disconnect_body: int = 1
    disconnect_response: int = 1
    never_read: int = 2
    # Clients that cost the server connections, not work.
    slow_headers: int = 2
    idle: int = 300
    max_upload: int = 4 << 20
    max_download: int = 4 << 20
    # Think time after each operation, uniform in [0, pause] (uploads, downloads and breaks:
    # [0, heavy_pause]): the offered load is then nearly the same for every server and leaves
    # the machine some headroom, so latencies compare. 0 and 0 send flat out (a stress run).
    pause: float = 0.02
    heavy_pause: float = 0.2


@dataclass
class Tally:
    """One kind's outcome: answers checked right, wrong, lost, and breaks the client caused."""

    ok: int = 0
    wrong: int = 0
    lost: int = 0
    caused: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < 5:
            self.notes.append(text)


@lru_cache(maxsize=256)
def _download_sha(size: int, seed: int) -> str:
    digest = hashlib.sha256()
    for block in download_blocks(size, seed):
        digest.update(block)
    return digest.hexdigest()


def _small(nonce: int, extra: str = "") -> bytes:
    return f"GET /small?n={nonce} HTTP/1.1\r\n{HOST}{extra}\r\n".encode()


def _download(size: int, seed: int, *, stream: bool) -> bytes:
    query = f"size={size}&seed={seed}" + ("&stream=1" if stream else "")
    return f"GET /download?{query} HTTP/1.1\r\n{HOST}\r\n".encode()


class Clients:
    """The clients of one soak run and what they saw."""

    def __init__(self, address: tuple[str, int], mix: Mix, seed: int) -> None:
        self.address = address
        self.mix = mix
        self.seed = seed
        self.tallies = {kind: Tally() for kind in KINDS}
        self.latencies: list[float] = []
        self.stop = asyncio.Event()
        self.open_now = self.open_peak = 0
        self.download_sizes = (0, 1, 1000, 64 << 10, 1 << 20, mix.max_download)
        self.idle: list[Conn] = []
        self.tasks: dict[asyncio.Task[None], str] = {}

    @cached_property
    def payloads(self) -> list[tuple[bytes, str]]:
        """Upload bodies of a few sizes up to `max_upload`, with their SHA-256."""
        rng = random.Random(f"{self.seed}:payloads")
        sizes = {1 << 10, 64 << 10, 300 << 10, 1 << 20, self.mix.max_upload // 2}
        bodies = [rng.randbytes(size) for size in sorted(sizes | {self.mix.max_upload})]
        return [(body, hashlib.sha256(body).hexdigest()) for body in bodies]

    async def run(self, kinds: Iterable[str], seconds: float) -> None:
        """Run `mix` clients of each of `kinds` for `seconds`, then let them finish (bounded)."""
        for kind in kinds:
            options = {"receive_buffer": 4096, "read": False} if kind == "never_read" else {}
            for index in range(getattr(self.mix, kind)):
                step = getattr(self, kind)
                task = asyncio.create_task(self.forever(kind, index, step, **options))
                self.tasks[task] = kind
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)  # the soak's duration
        self.stop.set()
        if not self.tasks:
            return
        _, stuck = await asyncio.wait(self.tasks, timeout=REQUEST_TIMEOUT + 10)
        for task in stuck:  # an answer that never came, not even within REQUEST_TIMEOUT
            task.cancel()
            self.tallies[self.tasks[task]].lost += 1
            self.tallies[self.tasks[task]].note("still waiting for an answer at the end")

    # -- connections and outcomes --------------------------------------------------------------

    async def connect(self, **options: Any) -> Conn:
        conn = await asyncio.wait_for(Conn.open(self.address, **options), REQUEST_TIMEOUT)
        self.open_now += 1
        self.open_peak = max(self.open_peak, self.open_now)
        return conn

    def drop(self, conn: Conn | None, *, reset: bool = False) -> None:
        if conn is None:
            return
        if reset:
            conn.reset()
        else:
            conn.close()
        self.open_now -= 1

    @staticmethod
    async def timed(awaitable: Awaitable[T]) -> T:
        return await asyncio.wait_for(awaitable, REQUEST_TIMEOUT)

    def failed(self, kind: str, exc: BaseException) -> None:
        tally = self.tallies[kind]
        if isinstance(exc, Malformed):
            tally.wrong += 1
        else:
            tally.lost += 1
        tally.note(f"{type(exc).__name__}: {exc}")

    def check(self, kind: str, response: Response, status: int, body: bytes | None) -> bool:
        tally = self.tallies[kind]
        if response.status == status and (body is None or response.body == body):
            tally.ok += 1
            return True
        tally.wrong += 1
        tally.note(f"got {response.status} {response.body[:80]!r}, wanted {status} {body!r}")
        return False

    async def forever(self, kind: str, index: int, step: Step, **options: Any) -> None:
        """Run `step` until the soak stops, on a connection it keeps or gives up."""
        rng = random.Random(f"{self.seed}:{kind}:{index}")
        heavy = kind in ("upload", "download", "disconnect_body", "disconnect_response")
        pause = self.mix.heavy_pause if heavy else self.mix.pause
        conn: Conn | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = await self.connect(**options)
                then = await step(conn, rng)
            except Exception as exc:
                self.failed(kind, exc)
                then = RESET
            if then == KEEP and conn is not None and conn.closing:
                then = CLOSE  # the server said it closes after its answer
            if then != KEEP:
                self.drop(conn, reset=then == RESET)
                conn = None
            if pause and kind != "never_read":
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), rng.uniform(0, pause))
        self.drop(conn)

    # -- the clients: each step returns what to do with its connection -------------------------

    async def keepalive(self, conn: Conn, rng: random.Random) -> str:
        nonce = rng.getrandbits(48)
        closing = rng.random() < 0.005  # now and then the client ends the connection itself
        started = time.perf_counter()
        await conn.send(_small(nonce, "Connection: close\r\n" if closing else ""))
        response = await self.timed(conn.response())
        elapsed = time.perf_counter() - started
        if self.check("keepalive", response, 200, b"small %d" % nonce) and not closing:
            self.latencies.append(elapsed)
        if not closing:
            return KEEP
        if not await self.timed(conn.closed_by_server()):
            raise Malformed("bytes after the answer to a Connection: close request")
        return CLOSE

    async def pipelined(self, conn: Conn, rng: random.Random) -> str:
        nonces = [rng.getrandbits(48) for _ in range(rng.randint(20, 50))]
        await conn.send(b"".join(_small(nonce) for nonce in nonces))
        for nonce in nonces:
            response = await self.timed(conn.response())
            self.check("pipelined", response, 200, b"small %d" % nonce)
        return KEEP

    async def send_body(
        self, conn: Conn, data: bytes, chunked: bool, rng: random.Random, upto: int
    ) -> None:
        """Send `data[:upto]` in random pieces (chunks, if `chunked`); the last chunk if whole."""
        pos = 0
        while pos < upto:
            size = min(rng.randint(1, 256 << 10), upto - pos)
            piece = data[pos : pos + size]
            await conn.send(b"%x\r\n%b\r\n" % (size, piece) if chunked else piece)
            pos += size
        if chunked and upto == len(data):
            await conn.send(b"0\r\n\r\n")

    @staticmethod
    def upload_head(data: bytes, sha: str, chunked: bool) -> bytes:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(data)}"
        return f"POST /upload HTTP/1.1\r\n{HOST}X-Sha256: {sha}\r\n{framing}\r\n\r\n".encode()

    async def upload(self, conn: Conn, rng: random.Random) -> str:
        data, sha = rng.choice(self.payloads)
        chunked = rng.random() < 0.5
        await conn.send(self.upload_head(data, sha, chunked))
        await self.timed(self.send_body(conn, data, chunked, rng, len(data)))
        response = await self.timed(conn.response())
        self.check("upload", response, 200, f"ok {len(data)} {sha}".encode())
        return KEEP

    async def download(self, conn: Conn, rng: random.Random) -> str:
        size, seed = rng.choice(self.download_sizes), rng.randrange(SEEDS)
        await conn.send(_download(size, seed, stream=rng.random() < 0.5))
        response = await self.timed(conn.response())
        if response.status == 200 and (
            len(response.body) != size
            or hashlib.sha256(response.body).hexdigest() != _download_sha(size, seed)
        ):
            raise Malformed(f"the {size} bytes of download seed {seed} came back different")
        self.check("download", response, 200, None)
        return KEEP

    async def slow_headers(self, conn: Conn, rng: random.Random) -> str:
        nonce = rng.getrandbits(48)
        for byte in _small(nonce):
            await conn.send(bytes((byte,)))
            await asyncio.sleep(BYTE_GAP)
        response = await self.timed(conn.response())
        self.check("slow_headers", response, 200, b"small %d" % nonce)
        return KEEP

    async def disconnect_body(self, conn: Conn, rng: random.Random) -> str:
        data, sha = rng.choice(self.payloads[2:])
        chunked = rng.random() < 0.5
        await conn.send(self.upload_head(data, sha, chunked))
        await self.timed(self.send_body(conn, data, chunked, rng, rng.randrange(len(data))))
        self.tallies["disconnect_body"].caused += 1
        return rng.choice((CLOSE, RESET))

    async def disconnect_response(self, conn: Conn, rng: random.Random) -> str:
        size = self.mix.max_download
        await conn.send(_download(size, 1, stream=rng.random() < 0.5))
        response = await self.timed(conn.head())
        if response.status != 200:
            raise Malformed(f"got {response.status} for a download")
        await self.timed(conn.reader.readexactly(rng.randrange(size // 2)))
        self.tallies["disconnect_response"].caused += 1
        return rng.choice((CLOSE, RESET))

    async def never_read(self, conn: Conn, rng: random.Random) -> str:
        if rng.random() < 0.5:
            await conn.send(_download(self.mix.max_download, 2, stream=False) * 4)
        else:
            await conn.send(b"".join(_small(n) for n in range(300)))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), rng.uniform(1.0, 5.0))
        self.tallies["never_read"].caused += 1
        return RESET

    async def open_idle(self) -> None:
        """The idle connections: even ones stay unused, odd ones after one answered request."""

        async def one(i: int) -> None:
            try:
                conn = await self.connect()
                self.idle.append(conn)
                if i % 2:
                    await conn.send(_small(i))
                    self.check("idle", await self.timed(conn.response()), 200, b"small %d" % i)
            except Exception as exc:
                self.failed("idle", exc)

        for start in range(0, self.mix.idle, 50):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 50, self.mix.idle))))

    async def check_idle(self) -> int:
        """Ask for an answer on every idle connection; how many still gave one."""

        async def one(i: int, conn: Conn) -> bool:
            try:
                await conn.send(_small(i))
                return self.check("idle", await self.timed(conn.response()), 200, b"small %d" % i)
            except Exception as exc:
                self.failed("idle", exc)
                return False

        return sum(await asyncio.gather(*(one(i, conn) for i, conn in enumerate(self.idle))))

    async def fresh_request_ms(self) -> list[float]:
        """Milliseconds for connect + request + whole answer, on a new connection each try."""
        times = []
        for i in range(FRESH_TRIES):
            started = time.perf_counter()
            conn = await self.connect()
            try:
                await conn.send(_small(i))
                response = await self.timed(conn.response())
            finally:
                self.drop(conn)
            times.append((time.perf_counter() - started) * 1000)
            self.check("keepalive", response, 200, b"small %d" % i)
        return times
