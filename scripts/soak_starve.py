"""The soak test's starvation phase (issue 17): idle sockets from one address against
websockify's pool, while an honest client from another address comes once a second.

A fresh websockify, its pool (--max-connections) four fifths of the idle
sockets, so they overflow it: the attacker (this event loop) opens them from
127.0.0.1 and sends nothing, and reopens each one websockify closes (evicted,
or dropped at its handshake deadline), so the count stays up for the whole
hold. Meanwhile the honest client, on a thread of its own with blocking
sockets (the attacker's busy loop must not be what delays it), connects from
127.0.0.2 once a second, completes a WebSocket handshake and echoes one
message. The phase fails when one honest attempt fails, when websockify logs
more than the throttle allows (a few lines per kind per 10 s) or anything else
the flood caused, or when its descriptors do not come back once the flood ends.
"""
from __future__ import annotations

import asyncio
import math
import re
import socket
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soak_procs as procs
from soak_ws import ACCEPT, masked_frame, request_head

HONEST_SOURCE = "127.0.0.2"  # all of 127/8 is loopback on Linux: another address, same machine
CONNECTS_IN_FLIGHT = 64  # the attacker's connects at once: never more than the listen backlog holds
LINES_PER_KIND_PER_WINDOW = 4  # websockify's throttle: 3 lines, then one count, per 10 s window
WINDOW_S = 10.0
KINDS = (("evicted", re.compile(r"evicted")),
         ("deadline", re.compile(r"dropped: (sent nothing|handshake not complete)")),
         ("dropped", re.compile(r"dropped")))
_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} websockify\[\d+\] (\w+) (.*)$")
_COUNTED = re.compile(r": (\d+) more in the last ")
_HONEST_SESSION = re.compile(rf"^{re.escape(HONEST_SOURCE)}:\d+ target=")


def pool_for(sockets: int) -> int:
    """websockify's --max-connections for the phase: the idle sockets overflow it by a quarter."""
    return max(1, sockets * 4 // 5)


def sockets_fitting(asked: int, hard_limit: int) -> tuple[int, str]:
    """The idle sockets this process can hold under `hard_limit` (each costs one descriptor
    here; websockify holds at most its pool and slack of them), and a line when it is fewer."""
    fits = max(0, hard_limit - 256)  # 256: the honest client, the echo server's pipe, Python's own
    if asked <= fits:
        return asked, ""
    return fits, (f"the open-file limit (hard {hard_limit}) fits {fits} idle sockets, not {asked}; "
                  f"the starvation phase runs with {fits}")


@dataclass
class Attempt:
    seconds: float
    error: str = ""


@dataclass
class Starvation:
    """The phase's record, checks and summary."""
    sockets: int
    hold: float
    pool: int
    attempts: list[Attempt] = field(default_factory=list)
    connects: int = 0
    closed_by_server: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    peak_open: int = 0
    fds_start: int | None = None
    fds_flood: int | None = None
    fds_end: int | None = None
    settle_seconds: float | None = None
    log_kinds: Counter[str] = field(default_factory=Counter)
    log_counted: Counter[str] = field(default_factory=Counter)  # events the throttle's count lines name
    log_other: list[str] = field(default_factory=list)
    log_seconds: float = 0.0  # from the flood's start to its end: what the log bound is for
    problems: list[str] = field(default_factory=list)

    def line_bound(self) -> int:
        return LINES_PER_KIND_PER_WINDOW * (math.ceil(self.log_seconds / WINDOW_S) + 1)

    def failures(self) -> list[str]:
        found = list(self.problems)
        failed = [a for a in self.attempts if a.error]
        if not self.attempts:
            found.append("starvation: the honest client made no attempt")
        elif failed:
            found.append(f"starvation: {len(failed)} of {len(self.attempts)} honest attempts from {HONEST_SOURCE} "
                         f"failed while {self.sockets} idle sockets were open, first: {failed[0].error}")
        over = {kind: n for kind, n in self.log_kinds.items() if n > self.line_bound()}
        if over:
            found.append(f"starvation: websockify's log is not throttled: {over} lines in {self.log_seconds:.0f}s "
                         f"(at most {self.line_bound()} per kind)")
        if self.log_other:
            found.append(f"starvation: websockify logged {len(self.log_other)} other lines, first: "
                         f"{self.log_other[0]}")
        if self.fds_start is not None and self.fds_end is not None and self.fds_end > self.fds_start:
            found.append(f"starvation: descriptors leaked: {self.fds_end} open after the flood ended, "
                         f"{self.fds_start} before it")
        return found

    def summary(self) -> str:
        lines = ["", "== starvation: idle sockets from one address " + "=" * 27]

        def row(name: str, text: str) -> None:
            lines.append(f"{name:<19}{text}")

        row("idle sockets", f"{self.sockets} from 127.0.0.1 sending nothing, held {self.hold:g}s against "
                            f"--max-connections {self.pool}: peak {self.peak_open} open, {self.connects} connects, "
                            f"{self.closed_by_server} closed by websockify")
        if self.connect_errors:
            row("", "connect errors: " + ", ".join(f"{n} {k}" for k, n in sorted(self.connect_errors.items())))
        ok = [a.seconds for a in self.attempts if not a.error]
        timing = (f": median {1000 * statistics.median(ok):.0f} ms, max {1000 * max(ok):.0f} ms" if ok else "")
        row("honest client", f"{len(ok)} of {len(self.attempts)} attempts from {HONEST_SOURCE} succeeded "
                             f"(handshake and one echo){timing}")
        kinds = ", ".join(f"{n} {kind} (counting {self.log_counted[kind]} more)"
                          for kind, n in sorted(self.log_kinds.items())) or "none"
        row("websockify log", f"{sum(self.log_kinds.values())} lines in {self.log_seconds:.0f}s of flood: {kinds} "
                              f"(throttle: at most {self.line_bound()} per kind); {len(self.log_other)} other")
        settle = f" ({self.settle_seconds:.1f}s after the flood closed)" if self.settle_seconds is not None else ""
        row("fds", f"start {_n(self.fds_start)}, in the flood {_n(self.fds_flood)}, end {_n(self.fds_end)}{settle}")
        failures = self.failures()
        row("result", "FAIL" if failures else "PASS")
        lines.extend(f"  - {failure}" for failure in failures)
        return "\n".join(lines)

    def read_log(self, log_path: Path, offset: int) -> None:
        """Count websockify's lines from `offset` (its size when the flood began) by kind;
        an honest session's line is not the flood's."""
        with open(log_path, "rb") as log:
            log.seek(offset)
            written = log.read().decode(errors="replace")
        for text in written.splitlines():
            match = _LINE.match(text)
            if match is None:
                if text.strip():
                    self.log_other.append(text)  # a traceback, or anything not a record
                continue
            message = match.group(2)
            if _HONEST_SESSION.match(message):
                continue
            kind = next((name for name, pattern in KINDS if pattern.search(message)), None)
            if kind is None:
                self.log_other.append(text)
                continue
            self.log_kinds[kind] += 1
            counted = _COUNTED.search(message)
            if counted:
                self.log_counted[kind] += int(counted.group(1))


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


class _Idle(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass  # an idle attacker sends nothing and reads nothing it needs

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class Flood:
    """`sockets` slots, each keeping one idle connection open: reopened when websockify closes it."""

    def __init__(self, host: str, port: int, sockets: int, record: Starvation):
        self.host, self.port, self.sockets, self.record = host, port, sockets, record
        self.open_now = 0
        self._connects = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        self._stopping = False
        self._live: set[_Idle] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._slot()) for _ in range(self.sockets)]

    async def _slot(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            async with self._connects:
                if self._stopping:
                    return
                try:
                    _, idle = await asyncio.wait_for(loop.create_connection(_Idle, self.host, self.port), 10)
                except (OSError, asyncio.TimeoutError) as exc:
                    self.record.connect_errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.1)
                    continue
            self.record.connects += 1
            self.open_now += 1
            self.record.peak_open = max(self.record.peak_open, self.open_now)
            self._live.add(idle)
            if self._stopping and idle.transport is not None:
                idle.transport.abort()
            try:
                await idle.closed
            finally:
                self._live.discard(idle)
                self.open_now -= 1
            if not self._stopping:
                self.record.closed_by_server += 1

    async def stop(self) -> None:
        """Close every socket. The slots end by themselves: a connect cancelled in flight can
        leave its socket open until its own timeout (uvloop), so none is cancelled unless stuck."""
        self._stopping = True
        for idle in list(self._live):
            if idle.transport is not None:
                idle.transport.abort()
        _, stuck = await asyncio.wait(self._tasks, timeout=15)
        for task in stuck:
            task.cancel()


def honest_attempt(host: str, port: int, index: int, timeout: float) -> Attempt:
    """Connect from HONEST_SOURCE, handshake, echo one message, close: every step within `timeout`."""
    started = time.monotonic()
    deadline = started + timeout
    step = "connect"
    try:
        with socket.create_connection((host, port), timeout=timeout, source_address=(HONEST_SOURCE, 0)) as sock:
            step = "handshake"
            sock.sendall(request_head(host, port))
            head = _read_until(sock, b"\r\n\r\n", deadline)
            if not head.startswith(b"HTTP/1.1 101 ") or ACCEPT not in head:
                status = head.split(b"\r\n", 1)[0]
                return Attempt(time.monotonic() - started, f"attempt {index}: refused: {status!r}")
            step = "echo"
            payload = b"honest %d" % index
            sock.sendall(masked_frame(0x2, payload))
            expected = bytes((0x82, len(payload))) + payload
            reply = _read_until(sock, expected, deadline)
            if not reply.endswith(expected):
                return Attempt(time.monotonic() - started, f"attempt {index}: echo differs: {reply!r}")
            sock.sendall(masked_frame(0x8, (1000).to_bytes(2, "big")))
    except OSError as exc:
        return Attempt(time.monotonic() - started, f"attempt {index}: {step}: {exc or type(exc).__name__}")
    return Attempt(time.monotonic() - started)


def _read_until(sock: socket.socket, end: bytes, deadline: float) -> bytes:
    data = b""
    while end not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out with {len(data)} bytes read")
        sock.settimeout(remaining)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed by websockify after {len(data)} bytes")
        data += chunk
    return data


def honest_client(host: str, port: int, every: float, seconds: float, timeout: float,
                  record: Starvation, stop: threading.Event) -> None:
    """Once every `every` seconds for `seconds` (an attempt that runs late delays the next)."""
    started = time.monotonic()
    index = 0
    while not stop.is_set() and time.monotonic() - started < seconds:
        record.attempts.append(honest_attempt(host, port, index, timeout))
        index += 1
        stop.wait(max(0.0, started + index * every - time.monotonic()))


async def run(record: Starvation, host: str, port: int, ws_pid: int, log_path: Path, *, every: float = 1.0,
              timeout: float = 10.0, settle: float = 30.0, sample_every: float = 5.0) -> None:
    """The phase, in the event loop: flood, hold with the honest client, close, settle, count the log."""
    probe = procs.Probe(ws_pid)
    record.fds_start = await _steady_fds(probe)
    offset = log_path.stat().st_size
    started = time.monotonic()
    flood = Flood(host, port, record.sockets, record)
    flood.start()
    stop = threading.Event()
    honest = threading.Thread(target=honest_client, name="honest client",
                              args=(host, port, every, record.hold, timeout, record, stop), daemon=True)
    try:
        ramp_limit = 60 + record.sockets / 100
        while record.connects < record.sockets and time.monotonic() - started < ramp_limit:
            await asyncio.sleep(0.05)
        if record.connects < record.sockets:
            record.problems.append(f"starvation: only {record.connects} of {record.sockets} idle sockets opened "
                                   f"in {ramp_limit:g}s")
        print(f"starve {time.monotonic() - started:4.0f}s  {flood.open_now} idle sockets open; the honest client "
              f"starts", flush=True)
        honest.start()
        next_sample = time.monotonic() + sample_every
        while honest.is_alive():
            await asyncio.sleep(0.1)
            fds = probe.read().fds
            record.fds_flood = max(record.fds_flood or 0, fds)
            if time.monotonic() >= next_sample:
                next_sample += sample_every
                ok = sum(1 for a in record.attempts if not a.error)
                print(f"starve {time.monotonic() - started:4.0f}s  {flood.open_now:5d} idle open, "
                      f"{record.closed_by_server} closed by websockify, honest {ok}/{len(record.attempts)} ok, "
                      f"websockify fds {fds}", flush=True)
    finally:
        stop.set()
        await flood.stop()
        await asyncio.to_thread(honest.join, timeout + 5)
    closed_at = time.monotonic()
    deadline = closed_at + settle
    while probe.read().fds > record.fds_start and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    record.fds_end = probe.read().fds
    if record.fds_end <= record.fds_start:
        record.settle_seconds = time.monotonic() - closed_at
    # The throttle writes its count of a window's left-out lines when the window ends.
    await asyncio.sleep(max(0.0, closed_at + WINDOW_S + 1 - time.monotonic()))
    record.log_seconds = time.monotonic() - started
    record.read_log(log_path, offset)


async def _steady_fds(probe: procs.Probe) -> int:
    previous = -1
    for _ in range(50):
        fds = probe.read().fds
        if fds == previous:
            return fds
        previous = fds
        await asyncio.sleep(0.1)
    return previous
