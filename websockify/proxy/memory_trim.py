"""Giving the C heap back to the system after a crowd of sessions has ended (glibc only).

Sessions allocate and free large buffers: a read's unread frames (up to 256 KiB
per client that floods), write buffers, joined payloads. glibc keeps what is freed
for reuse and returns to the system only the free memory at the top of its heap,
so after a flood of many clients that leave, the process stays near its peak
(hundreds of MB, with every descriptor closed). `malloc_trim(0)` returns every
free page of every arena. It walks the whole heap (milliseconds for hundreds of
MB), so it is never on the path of a session: the event loop's HeapTrimmer, told
by each relay as its session ends (pump.py), runs it once
TRIM_AFTER_ENDS sessions have ended since the last trim, TRIM_QUIET_S after the
last of them (one trim for a burst of ends), at the latest TRIM_MAX_WAIT_S after
the burst began (steady churn is trimmed too), and not more often than every
TRIM_INTERVAL_S. On a C library without malloc_trim (musl, macOS) it does nothing.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

# Fewer ends than this free too little to be worth a walk of the heap.
TRIM_AFTER_ENDS = 64
TRIM_QUIET_S = 1.0
TRIM_MAX_WAIT_S = 10.0
TRIM_INTERVAL_S = 10.0


def glibc_malloc_trim() -> Callable[[], object] | None:
    """`malloc_trim(0)` of glibc, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # off glibc: no such name (ValueError), or none
            return None
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, ValueError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: function(0)


_MALLOC_TRIM = glibc_malloc_trim()  # looked up once per process


class HeapTrimmer:
    """Counts session ends; trims the heap after a burst of them (see the module's docstring)."""

    __slots__ = ("_after_ends", "_burst_began", "_ended", "_interval_s", "_last_end", "_last_trim", "_loop",
                 "_max_wait_s", "_quiet_s", "_timer", "_trim", "trims")

    def __init__(self, loop: asyncio.AbstractEventLoop, trim: Callable[[], object] | None, *,
                 after_ends: int = TRIM_AFTER_ENDS, quiet_s: float = TRIM_QUIET_S,
                 max_wait_s: float = TRIM_MAX_WAIT_S, interval_s: float = TRIM_INTERVAL_S):
        self._loop = loop
        self._trim = trim
        self._after_ends = after_ends
        self._quiet_s = quiet_s
        self._max_wait_s = max_wait_s
        self._interval_s = interval_s
        self._ended = 0
        self._burst_began = self._last_end = 0.0
        self._last_trim = -interval_s  # the first trim waits for no earlier one
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0

    @property
    def enabled(self) -> bool:
        return self._trim is not None

    def session_ended(self) -> None:
        if self._trim is None:
            return
        self._ended += 1
        if self._ended < self._after_ends:
            return
        self._last_end = now = self._loop.time()  # the timer reads it when it fires: no timer per end
        if self._timer is None:
            self._burst_began = now
            self._timer = self._loop.call_at(self._due(), self._fire)

    def _due(self) -> float:
        quiet = min(self._last_end + self._quiet_s, self._burst_began + self._max_wait_s)
        return max(quiet, self._last_trim + self._interval_s)

    def _fire(self) -> None:
        due = self._due()
        if self._loop.time() < due:  # more sessions ended since the timer was set
            self._timer = self._loop.call_at(due, self._fire)
            return
        self._timer = None
        self._ended = 0
        assert self._trim is not None
        started = time.perf_counter()
        self._trim()
        self._last_trim = self._loop.time()
        self.trims += 1
        log.debug("heap trimmed in %.1f ms", (time.perf_counter() - started) * 1e3)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_per_thread = threading.local()


def heap_trimmer(loop: asyncio.AbstractEventLoop) -> HeapTrimmer:
    """The trimmer of `loop`: one per event loop, made on first use (as fairness.fair_queue)."""
    trimmer: HeapTrimmer | None = getattr(_per_thread, "trimmer", None)
    if trimmer is None or trimmer._loop is not loop:
        trimmer = _per_thread.trimmer = HeapTrimmer(loop, _MALLOC_TRIM)
    return trimmer
