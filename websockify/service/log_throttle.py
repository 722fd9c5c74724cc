"""Log lines that a flood repeats, a few per window and then one count.

One ThrottledLog per kind of event (a client dropped, evicted, timed out):
the first `burst` lines of a window are written as they come, the rest are
counted, and when the window ends one line says how many were left out
("dropped: server full: 5123 more in the last 10 s"). A flood of a million
sockets then writes a few lines every ten seconds instead of a million.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

WINDOW_S = 10.0
BURST = 3

CallAt = Callable[[float, Callable[[], None]], object]


class ThrottledLog:
    def __init__(self, logger: logging.Logger, level: int, what: str, clock: Callable[[], float],
                 call_at: CallAt | None = None, *, burst: int = BURST, window_s: float = WINDOW_S):
        """`what` names the event in the count's line; `clock` gives the time (the event
        loop's); `call_at(when, callback)` writes the count when the window ends (without
        it, the count waits for the next event after the window)."""
        self._logger = logger
        self._level = level
        self._what = what
        self._clock = clock
        self._call_at = call_at
        self._burst = burst
        self._window_s = window_s
        self._window_end = float("-inf")
        self._written = 0
        self.suppressed = 0  # in the current window
        self._flush_pending = False

    def __call__(self, message: str, *args: Any) -> None:
        now = self._clock()
        if now >= self._window_end:
            self._flush()
            self._window_end = now + self._window_s
        if self._written < self._burst:
            self._written += 1
            self._logger.log(self._level, message, *args)
            return
        self.suppressed += 1
        if self._call_at is not None and not self._flush_pending:
            self._flush_pending = True
            self._call_at(self._window_end, self._window_ended)

    def _window_ended(self) -> None:
        self._flush_pending = False
        self._flush()
        self._window_end = float("-inf")

    def _flush(self) -> None:
        if self.suppressed:
            self._logger.log(self._level, "%s: %d more in the last %g s", self._what, self.suppressed,
                             self._window_s)
        self.suppressed = 0
        self._written = 0
