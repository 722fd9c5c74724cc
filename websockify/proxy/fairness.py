"""One budget per turn of the event loop, shared by every session with unread frames.

A session reads at most one slice of its client's bytes per call (FRAMES_PER_CALL
frames or about PAYLOAD_BYTES_PER_CALL bytes of payload, protocol/websocket.py).
What a read leaves unread waits, with reading from that client paused, in one
queue per event loop. Once per turn the queue gives the sessions at its head one
slice each, in turn, until TURN_BUDGET_S of work is spent (at least one slice); a
session with frames still unread goes to the back. So however many clients flood,
the loop spends about TURN_BUDGET_S per turn on their backlog before it reads
sockets again, and a client that sends little (never backlogged) is read in the
next turn: N flooders share one budget instead of taking N slices.

A session is read at once when its client's bytes arrive (its first slice) and
only then joins the queue; a session leaves the queue when its backlog is read,
and resumes reading its client then, so at most as many sessions resume per turn
as the queue served slices in it.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Callable, Protocol

# The loop's time per turn for backlogged sessions. A slice of 256 one-byte frames
# takes about a millisecond on the 2-core development machine: two slices a turn
# keep a normal client's round trip within a few milliseconds, and the loop's own
# cost per turn (tens of microseconds) stays small beside the budget.
TURN_BUDGET_S = 0.002


class Backlogged(Protocol):
    """A session with frames it has not read yet."""

    def drain_backlog(self) -> None:
        """Read one more slice; a session with frames still unread queues again (FairQueue.enqueue)."""


class FairQueue:
    """The sessions waiting for their next slice, served round robin, one budget per turn."""

    __slots__ = ("_budget_s", "_clock", "_loop", "_queue", "_scheduled", "slices_served", "turns")

    def __init__(self, loop: asyncio.AbstractEventLoop, budget_s: float = TURN_BUDGET_S,
                 clock: Callable[[], float] = time.perf_counter):
        self._loop = loop
        self._budget_s = budget_s
        self._clock = clock
        self._queue: deque[Backlogged] = deque()
        self._scheduled = False
        self.turns = 0  # turns that served the queue: for tests and debugging
        self.slices_served = 0

    def __len__(self) -> int:
        return len(self._queue)

    def enqueue(self, session: Backlogged) -> None:
        """`session` wants a slice in a coming turn (the caller queues it once at a time)."""
        self._queue.append(session)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._serve)

    def _serve(self) -> None:
        """One turn's share: callbacks scheduled now run in the next turn, after its reads."""
        self._scheduled = False
        queue, clock = self._queue, self._clock
        self.turns += 1
        deadline = clock() + self._budget_s
        # Only the sessions queued before this turn: one that queues again waits for the next.
        for _ in range(len(queue)):
            queue.popleft().drain_backlog()
            self.slices_served += 1
            if clock() >= deadline:
                break
        if queue and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._serve)


_per_thread = threading.local()


def fair_queue(loop: asyncio.AbstractEventLoop) -> FairQueue:
    """The queue of `loop`: one per event loop, made on first use (a thread runs one loop
    at a time; a new loop in the thread, as in tests, gets a new queue)."""
    queue: FairQueue | None = getattr(_per_thread, "queue", None)
    if queue is None or queue._loop is not loop:
        queue = _per_thread.queue = FairQueue(loop)
    return queue
