"""When websockify ends by itself: --idle-timeout, --timeout, --run-once.

Sessions are WebSocket sessions only; plain HTTP requests do not count. The
decisions are taken from session starts and ends and two timers;
`stop(reason)` and `stop_accepting()` are the caller's. The timers come from
`call_later`, the running event loop's unless another is given: a test passes
a manual clock and decides when time moves.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from ..config import Lifetime

log = logging.getLogger(__name__)


class Timer(Protocol):
    def cancel(self) -> None: ...


# call_later(delay_s, callback) -> a timer that can be cancelled, as asyncio's loop has it.
CallLater = Callable[[float, Callable[[], None]], Timer]


class Lifetimes:
    def __init__(self, lifetime: Lifetime, stop: Callable[[str], None], stop_accepting: Callable[[], None],
                 on_change: Callable[[int], None] = lambda sessions: None, *,
                 call_later: CallLater | None = None):
        self._lifetime = lifetime
        self._stop = stop
        self._stop_accepting = stop_accepting
        self._on_change = on_change
        self._call_later: CallLater = call_later or asyncio.get_running_loop().call_later
        self._idle_timer: Timer | None = None
        self._timeout_timer: Timer | None = None
        self._draining = False  # --timeout has passed: end with the last session
        self.sessions = 0
        self.sessions_total = 0

    def start(self) -> None:
        if self._lifetime.timeout_s:
            self._timeout_timer = self._call_later(self._lifetime.timeout_s, self._timed_out)
        self._arm_idle()

    def session_started(self) -> None:
        self.sessions += 1
        self.sessions_total += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._on_change(self.sessions)

    def session_ended(self) -> None:
        self.sessions -= 1
        self._on_change(self.sessions)
        if self._lifetime.run_once:
            self._stop("--run-once: the WebSocket session ended")
        elif self.sessions == 0 and self._draining:
            self._stop("--timeout: the last session ended")
        else:
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self._lifetime.idle_timeout_s and self.sessions == 0 and self._idle_timer is None:
            self._idle_timer = self._call_later(self._lifetime.idle_timeout_s, self._idle)

    def _idle(self) -> None:
        self._idle_timer = None
        self._stop(f"--idle-timeout: no session for {self._lifetime.idle_timeout_s:g}s")

    def _timed_out(self) -> None:
        self._timeout_timer = None
        log.info("--timeout: %gs since start; no new connections", self._lifetime.timeout_s)
        self._stop_accepting()
        self._draining = True
        if self.sessions == 0:
            self._stop("--timeout: no session open")

    def close(self) -> None:
        for timer in (self._idle_timer, self._timeout_timer):
            if timer is not None:
                timer.cancel()
