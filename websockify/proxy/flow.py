"""Why a relay has stopped reading its client, and whether a blocked relay has stalled.

Flow control: each leg's transport has a write-buffer high-water mark
(`write_buffer_bytes`). When the client's write buffer is above it, reading from
the target pauses, and so does reading from the client (a client's pings make
pongs: every kind of frame that makes a reply counts). When the target's write
buffer is above it, reading from the client pauses. Reading resumes below the
low-water mark (a quarter of it).

Fairness: the session reads a bounded number of frames and payload bytes per
call (protocol/websocket.py); what it leaves waits, with reading from that
client paused, for its turn in the event loop's one queue (fairness.py), which
spends a bounded time per loop turn on all the backlogged sessions together, so
N clients sending tiny frames as fast as they can delay the others by about as
much as one does. The rest also waits while the target is full.

Memory bound per connection, whatever the peers do: each write buffer holds at
most the high-water mark plus one read from the other leg (asyncio reads at
most 256 KiB at a time, 4/3 of that after base64), and the WebSocket parser
holds at most one partial message (`max_message_bytes`). With the defaults
(256 KiB, 1 MiB) that is under 2.5 MiB; an idle connection holds a few KiB.
What many sessions freed goes back to the system after a burst of ends (memory_trim.py).

Stalls: while either leg is over its mark (reading paused by flow control), one
timer per session looks every quarter of the stall timeout whether anything
moved (bytes relayed, or either leg's unsent bytes changed); a session in which
nothing moved for the stall timeout is cut (so within 1.25 times that of the
last movement), and the log says which side does not read. An idle session has
nothing blocked and no timer: it is never cut. The default is STALL_TIMEOUT_S,
or two heartbeat intervals with --heartbeat (the time in which the heartbeat
takes a silent client for dead).
"""
from __future__ import annotations

import asyncio
import enum
import select
from typing import Protocol


class Blocker(enum.StrEnum):
    """Why reading from the client is paused; it resumes when no reason is left.

    A StrEnum: hashed and compared in C (a plain Enum hashes in Python) on every
    set operation of the relay."""

    CONNECTING = "connecting"  # the target is not connected yet
    BUDGET = "budget"  # the session holds frames it has not read yet (protocol/websocket.py)
    TARGET_FULL = "target-full"  # the target's write buffer is over the mark
    CLIENT_FULL = "client-full"  # the client's write buffer is over the mark: its pings make pongs
    FAILED = "failed"  # the client broke the protocol and has our close: nothing it sends is read


BUDGET_ONLY = frozenset({Blocker.BUDGET})  # bound once: a set made per call would be an allocation
# Flow-control blockers: while one holds, the stall watch runs.
FLOW_BLOCKERS = frozenset({Blocker.TARGET_FULL, Blocker.CLIENT_FULL})

# A session blocked by flow control with nothing moving for this long is cut
# (without --heartbeat; with it, two heartbeat intervals).
STALL_TIMEOUT_S = 60.0
_NO_MARK = (-1, -1, -1, -1)


def choose_stall_timeout_s(configured: float | None, heartbeat_s: float) -> float:
    """`configured`, or the default: two heartbeat intervals, else STALL_TIMEOUT_S. 0: never."""
    if configured is not None:
        return configured
    return 2 * heartbeat_s if heartbeat_s else STALL_TIMEOUT_S


_HANGUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


def hung_up(transport: asyncio.BaseTransport) -> bool:
    """Whether the peer of `transport` has left, seen from its socket (unread bytes or not)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), _HANGUP)
    return bool(poller.poll(0))


def cancel(handle: asyncio.TimerHandle | None) -> None:
    """Cancel a timer the relay may or may not have set."""
    if handle is not None:
        handle.cancel()


class Watched(Protocol):
    """What the stall watch asks of its relay."""

    def flow_blockers(self) -> set[Blocker]:
        """The flow-control blockers in force; empty once nothing is blocked or the session is over."""

    def progress(self) -> tuple[int, int, int, int]:
        """What moves when anything is relayed: a stalled session keeps all four still."""

    def look_for_hangup(self, blockers: set[Blocker]) -> None:
        """A look at the client's socket, for a leaving the blocked relay cannot read."""

    def cut_stalled(self, blockers: set[Blocker]) -> None:
        """Nothing moved for the stall timeout: end the session."""


class StallWatch:
    """One timer, armed only while a leg is blocked by flow control."""

    __slots__ = ("_loop", "_relay", "_since", "_mark", "_tick_s", "_timer", "timeout_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, relay: Watched, timeout_s: float, close_timeout_s: float):
        self._loop = loop
        self._relay: Watched | None = relay
        self.timeout_s = timeout_s
        self._tick_s = min(close_timeout_s, timeout_s / 4)
        self._timer: asyncio.TimerHandle | None = None
        self._mark: tuple[int, int, int, int] = _NO_MARK
        self._since = 0.0

    def arm(self) -> None:
        """A leg just got blocked: start looking, unless already looking (or never)."""
        if self._timer is None and self.timeout_s > 0:
            self._mark = _NO_MARK  # the first look takes it: no system call here
            self._timer = self._loop.call_later(self._tick_s, self._look)

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """The session is over: no more looks, and no reference back to the relay, so the
        relay is freed as its connection goes (a cycle would wait for the garbage
        collector, with everything the session still holds)."""
        self.disarm()
        self._relay = None

    def _look(self) -> None:
        self._timer = None
        if self._relay is None:
            return
        blockers = self._relay.flow_blockers()
        if not blockers:
            return
        self._relay.look_for_hangup(blockers)
        now, mark = self._loop.time(), self._relay.progress()
        if mark != self._mark:
            self._mark, self._since = mark, now
        elif now - self._since >= self.timeout_s:
            self._relay.cut_stalled(blockers)
            return
        self._timer = self._loop.call_later(self._tick_s, self._look)
