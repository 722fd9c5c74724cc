"""Whether each worker still answers: the parent's side of the heartbeat.

A worker's event loop sends ALIVE every control.HEARTBEAT_INTERVAL_S (link.py),
so a worker whose process is stopped (SIGSTOP) or whose loop is stuck falls
silent, while a merely busy one keeps answering: its timers still run. The
parent looks once per CHECK_INTERVAL_S and replaces a worker silent for longer
than SILENCE_LIMIT_S; until a worker is first heard from, it has its startup
time instead.

Time the parent itself did not run is not counted against the workers: a
Ctrl-Z at a terminal stops the whole process group, and at `fg` the parent may
well look before the workers have had a turn to speak. A check that comes a
whole interval late means the parent was not running, so every window is
moved on by the time it missed.

Pure: the clock is passed in.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

# A healthy loop is never 10 s late (a garbage-collection pause, a swap-in, a
# slow certificate reload are well under that), and sessions frozen for longer
# are already failing their clients: they get their connection closed and
# can reconnect to a worker that answers.
SILENCE_LIMIT_S = 10.0
CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Silent:
    """A worker to replace: its pid, and how long nothing was heard from it."""

    pid: int
    silent_s: float


@dataclass
class _Window:
    since_s: float  # last heard from, or started
    limit_s: float  # how long it may be silent from then


class Liveness:
    """When each worker was last heard from, and which have been silent too long."""

    def __init__(self, start_limit_s: float, silence_limit_s: float = SILENCE_LIMIT_S,
                 check_interval_s: float = CHECK_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self._start_limit_s = start_limit_s
        self._silence_limit_s = silence_limit_s
        self._check_interval_s = check_interval_s
        self._clock = clock
        self._windows: dict[int, _Window] = {}  # by pid
        self._last_check_s = clock()

    def begin(self) -> None:
        """The checks start now (not at construction), one every check interval."""
        self._last_check_s = self._clock()

    def started(self, pid: int) -> None:
        """A new worker: it has its startup time before it must be heard from."""
        self._windows[pid] = _Window(self._clock(), self._start_limit_s)

    def heard(self, pid: int) -> None:
        """Any message from the worker: it answers."""
        window = self._windows.get(pid)
        if window is not None:  # not one condemned or gone already
            window.since_s = self._clock()
            window.limit_s = self._silence_limit_s

    def forget(self, pid: int) -> None:
        self._windows.pop(pid, None)

    def check(self) -> list[Silent]:
        """The workers silent past their limit, each reported once (then forgotten).
        Called every check interval from begin() on."""
        now = self._clock()
        missed_s = now - self._last_check_s - self._check_interval_s
        if missed_s > self._check_interval_s:  # we were not running: nobody could be heard
            for window in self._windows.values():
                window.since_s = min(window.since_s + missed_s, now)
        self._last_check_s = now
        silent = [Silent(pid, now - window.since_s) for pid, window in self._windows.items()
                  if now - window.since_s > window.limit_s]
        for worker in silent:
            del self._windows[worker.pid]
        return silent
