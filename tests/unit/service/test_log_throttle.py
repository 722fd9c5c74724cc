"""Lines a flood repeats: a few per window, then one count."""
from __future__ import annotations

import logging
from typing import Callable

from websockify.service.log_throttle import ThrottledLog

log = logging.getLogger("test.throttle")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_few_lines_per_window_then_the_count_when_the_window_ends(caplog):
    clock = Clock()
    timers: list[tuple[float, Callable[[], None]]] = []
    throttled = ThrottledLog(log, logging.WARNING, "dropped", clock, lambda when, cb: timers.append((when, cb)),
                             burst=3, window_s=10)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for n in range(5126):
            throttled("socket %d dropped", n)
        assert [r.getMessage() for r in caplog.records] == [f"socket {n} dropped" for n in range(3)]
        assert len(timers) == 1 and timers[0][0] == 10.0
        clock.now = 10.0
        timers[0][1]()
        assert caplog.records[-1].getMessage() == "dropped: 5123 more in the last 10 s"
        throttled("socket again")  # a new window
        assert caplog.records[-1].getMessage() == "socket again"
    assert len(caplog.records) == 5


def test_without_a_timer_the_count_comes_with_the_next_line_after_the_window(caplog):
    clock = Clock()
    throttled = ThrottledLog(log, logging.INFO, "evicted", clock, burst=1, window_s=10)
    with caplog.at_level(logging.INFO, logger="test.throttle"):
        throttled("one")
        throttled("two")
        clock.now = 11
        throttled("three")
    assert [r.getMessage() for r in caplog.records] == ["one", "evicted: 1 more in the last 10 s", "three"]
