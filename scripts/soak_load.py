"""The soak test's load: N connection slots, each a loop of open, use, close.

Every slot holds one connection at a time, so the total stays near N by
construction. Before the churn starts the slots only hold their connection.
During the churn each connection lives an exponentially distributed time
(mean N / churn rate, so about `churn_rate` reconnects per second in all),
then closes (cleanly, or abruptly with a bare FIN or a reset) and the slot
opens a new one. The first `echo_fraction` of the slots echo messages of
random size and deterministic content while they live.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from soak_ws import Payloads, SessionError, WsConnection, request_head

MESSAGES_KEPT_PER_KIND = 3


@dataclass(frozen=True)
class LoadSettings:
    host: str
    port: int
    connections: int
    echo_fraction: float
    echo_rate: float  # messages per second over all echoing connections
    max_message: int
    churn_rate: float  # reconnects per second over all connections
    abrupt_fraction: float
    handshakes: int  # at most this many opening at once
    timeout: float  # for a handshake, an echo, a clean close
    seed: int


@dataclass
class Stats:
    opens: int = 0
    echoes: int = 0
    echo_bytes: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # by style, during the churn
    errors: Counter[str] = field(default_factory=Counter)  # by kind
    messages: dict[str, list[str]] = field(default_factory=dict)  # the first few of each kind
    open_now: int = 0
    opening: int = 0
    closing: int = 0

    def error(self, exc: SessionError) -> None:
        self.errors[exc.kind] += 1
        kept = self.messages.setdefault(exc.kind, [])
        if len(kept) < MESSAGES_KEPT_PER_KIND:
            kept.append(str(exc))

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class Load:
    def __init__(self, settings: LoadSettings):
        self.settings = settings
        self.stats = Stats()
        self.payloads = Payloads(settings.seed, settings.max_message)
        self.echoers = round(settings.connections * settings.echo_fraction)
        self.churning = False
        self.stopping = False
        self.aborted = False  # what fails from here on is our doing, not websockify's
        self._head = request_head(settings.host, settings.port)
        self._live: set[WsConnection] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._handshakes = asyncio.Semaphore(settings.handshakes)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._slot(i)) for i in range(self.settings.connections)]

    def begin_churn(self) -> None:
        self.churning = True
        self._wake_all()

    async def stop(self, timeout: float) -> int:
        """Close every connection cleanly; return how many slots did not finish in time."""
        self.stopping = True
        self._wake_all()
        _, pending = await asyncio.wait(self._tasks, timeout=timeout) if self._tasks else ((), set())
        self.abort()
        return len(pending)

    def abort(self) -> None:
        """Drop every connection and stop every slot at once (Ctrl-C, failure, the end)."""
        self.stopping = self.aborted = True
        for task in self._tasks:
            task.cancel()
        for conn in list(self._live):
            conn.abort()

    async def probe(self) -> None:
        """One connection, one echo, one clean close: the relay works before the soak starts."""
        conn = await self._open()
        if conn is None:
            raise SessionError("open", self.stats.messages.get("open", ["cannot connect"])[-1])
        offset, size = self.payloads.pick(random.Random(self.settings.seed))
        await conn.echo(self.payloads.frame(offset, size), self.payloads.expected(offset, size), self.settings.timeout)
        await conn.close("clean", self.settings.timeout)
        self.stats.opens = 0

    # -- one slot ------------------------------------------------------------------------

    async def _slot(self, index: int) -> None:
        rng = random.Random(self.settings.seed * 1_000_003 + index)
        echoer = index < self.echoers
        try:
            while not self.stopping:
                conn = await self._open()
                if conn is None:
                    if not self.stopping:
                        await asyncio.sleep(0.5 + rng.random())  # back off; the failure is counted
                    continue
                await self._session(conn, rng, echoer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must show, not just end one slot quietly
            if not self.aborted:
                self.stats.error(SessionError("client", f"slot {index}: {exc!r}"))

    async def _session(self, conn: WsConnection, rng: random.Random, echoer: bool) -> None:
        error: SessionError | None = None
        try:
            while not (self.churning or self.stopping or conn.failure):
                await conn.sleep(3600)
            loop = asyncio.get_running_loop()
            rate = self.settings.churn_rate / self.settings.connections
            deadline = loop.time() + (rng.expovariate(rate) if rate > 0 else float("inf"))
            if echoer:
                await self._echo_until(conn, rng, deadline)
            else:
                while not (self.stopping or conn.failure) and loop.time() < deadline:
                    await conn.sleep(deadline - loop.time())
            if conn.failure is None:
                style = "clean" if self.stopping else self._close_style(rng)
                self.stats.closing += 1
                try:
                    await conn.close(style, self.settings.timeout)
                finally:
                    self.stats.closing -= 1
                if not self.stopping:
                    self.stats.closes[style] += 1
        except SessionError as exc:
            error = exc
        failure = conn.failure or error
        if failure is not None and not self.aborted:
            self.stats.error(failure)
            conn.abort()
            await conn.finished

    async def _echo_until(self, conn: WsConnection, rng: random.Random, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        per_connection = self.settings.echo_rate / max(1, self.echoers)
        while not (self.stopping or conn.failure) and loop.time() < deadline:
            offset, size = self.payloads.pick(rng)
            await conn.echo(self.payloads.frame(offset, size), self.payloads.expected(offset, size),
                            self.settings.timeout)
            self.stats.echoes += 1
            self.stats.echo_bytes += size
            if per_connection > 0:
                await conn.sleep(min(rng.expovariate(per_connection), max(0.0, deadline - loop.time())))

    def _close_style(self, rng: random.Random) -> str:
        draw = rng.random()
        if draw < self.settings.abrupt_fraction / 2:
            return "fin"
        if draw < self.settings.abrupt_fraction:
            return "rst"
        return "clean"

    async def _open(self) -> WsConnection | None:
        loop = asyncio.get_running_loop()
        async with self._handshakes:
            if self.stopping:
                return None
            self.stats.opening += 1
            conn: WsConnection | None = None
            try:
                async with asyncio.timeout(self.settings.timeout):
                    _, conn = await loop.create_connection(
                        lambda: WsConnection(self._head, self._lost), self.settings.host, self.settings.port)
                    await conn.opened
            except SessionError as exc:
                self.stats.error(exc)
                return None
            except (OSError, TimeoutError) as exc:
                reason = "no upgrade" if conn is not None else "connect"
                self.stats.error(SessionError("open", f"{reason}: {exc!r} within {self.settings.timeout:g}s"))
                if conn is not None:
                    conn.abort()
                return None
            finally:
                self.stats.opening -= 1
        self.stats.opens += 1
        self.stats.open_now += 1
        self._live.add(conn)
        return conn

    def _lost(self, conn: WsConnection) -> None:
        if conn in self._live:
            self._live.discard(conn)
            self.stats.open_now -= 1

    def _wake_all(self) -> None:
        for conn in list(self._live):
            conn.wake_up()
