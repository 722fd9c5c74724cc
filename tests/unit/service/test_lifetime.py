"""service/lifetime.py: when websockify ends by itself, decided on a manual clock.

No event loop and no sleeping: `ManualClock.advance` fires the timers that
fall due, in order, so each test states exactly when time moves.
"""
from __future__ import annotations

from typing import Callable

import pytest

from websockify.config import Lifetime
from websockify.service.lifetime import Lifetimes


class ManualTimer:
    def __init__(self, due: float, callback: Callable[[], None]):
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """call_later for Lifetimes; time moves only in advance()."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[ManualTimer] = []

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(self.now + delay_s, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[ManualTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while due := sorted((t for t in self.pending() if t.due <= end), key=lambda t: t.due):
            timer = due[0]
            self.now = timer.due
            self.timers.remove(timer)
            timer.callback()
        self.now = end


class Recorder:
    """What Lifetimes asked of its caller, in order."""

    def __init__(self) -> None:
        self.events: list[object] = []

    def stop(self, reason: str) -> None:
        self.events.append(("stop", reason))

    def stop_accepting(self) -> None:
        self.events.append("stop_accepting")

    @property
    def stops(self) -> list[object]:
        return [e for e in self.events if isinstance(e, tuple)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def lifetimes(clock: ManualClock, recorder: Recorder, changes: list[int] | None = None, **settings: object) -> Lifetimes:
    on_change = changes.append if changes is not None else (lambda sessions: None)
    return Lifetimes(Lifetime(**settings), recorder.stop, recorder.stop_accepting,
                     on_change, call_later=clock.call_later)


def test_without_lifetime_options_no_timer_is_set_and_nothing_stops(clock):
    recorder = Recorder()
    life = lifetimes(clock, recorder)
    life.start()
    life.session_started()
    life.session_ended()
    clock.advance(10 ** 6)
    assert clock.timers == [] and recorder.events == []


def test_idle_timeout_stops_when_no_session_started_in_time(clock):
    recorder = Recorder()
    lifetimes(clock, recorder, idle_timeout_s=5).start()
    clock.advance(4.999)
    assert recorder.events == []
    clock.advance(0.001)
    assert recorder.events == [("stop", "--idle-timeout: no session for 5s")]


def test_idle_timeout_waits_while_a_session_runs_and_counts_from_its_end(clock):
    recorder = Recorder()
    life = lifetimes(clock, recorder, idle_timeout_s=5)
    life.start()
    clock.advance(3)
    life.session_started()
    clock.advance(100)  # a long session: never idle
    assert recorder.events == []
    life.session_ended()
    clock.advance(4.5)
    assert recorder.events == []
    clock.advance(0.5)
    assert recorder.stops == [("stop", "--idle-timeout: no session for 5s")]


def test_idle_timer_is_armed_once_for_overlapping_sessions(clock):
    recorder = Recorder()
    life = lifetimes(clock, recorder, idle_timeout_s=2.5)
    life.start()
    life.session_started()
    life.session_started()
    life.session_ended()  # one still open: not idle
    clock.advance(10)
    assert recorder.events == [] and clock.pending() == []
    life.session_ended()
    assert len(clock.pending()) == 1
    clock.advance(2.5)
    assert recorder.stops == [("stop", "--idle-timeout: no session for 2.5s")]


def test_timeout_with_no_session_stops_accepting_then_stops(clock):
    recorder = Recorder()
    lifetimes(clock, recorder, timeout_s=30).start()
    clock.advance(29.9)
    assert recorder.events == []
    clock.advance(0.1)
    assert recorder.events == ["stop_accepting", ("stop", "--timeout: no session open")]


def test_timeout_lets_open_sessions_finish_and_stops_with_the_last(clock):
    recorder = Recorder()
    life = lifetimes(clock, recorder, timeout_s=30)
    life.start()
    life.session_started()
    life.session_started()
    clock.advance(30)
    assert recorder.events == ["stop_accepting"]  # no new clients; the two go on
    life.session_ended()
    assert recorder.stops == []
    life.session_ended()
    assert recorder.stops == [("stop", "--timeout: the last session ended")]


def test_run_once_stops_when_the_first_session_ends(clock):
    recorder = Recorder()
    life = lifetimes(clock, recorder, run_once=True)
    life.start()
    life.session_started()
    assert recorder.events == []
    life.session_ended()
    assert recorder.events == [("stop", "--run-once: the WebSocket session ended")]


def test_run_once_does_not_end_before_a_session_however_long(clock):
    recorder = Recorder()
    lifetimes(clock, recorder, run_once=True).start()
    clock.advance(10 ** 6)
    assert recorder.events == []


def test_sessions_are_counted_and_each_change_reported(clock):
    changes: list[int] = []
    life = lifetimes(clock, Recorder(), changes)
    life.start()
    for _ in range(3):
        life.session_started()
    life.session_ended()
    life.session_started()
    assert (life.sessions, life.sessions_total) == (3, 4)
    assert changes == [1, 2, 3, 2, 3]


def test_close_cancels_both_timers(clock):
    recorder = Recorder()
    life = lifetimes(clock, recorder, idle_timeout_s=5, timeout_s=7)
    life.start()
    assert len(clock.pending()) == 2
    life.close()
    assert clock.pending() == []
    clock.advance(100)
    assert recorder.events == []


def test_without_a_clock_the_running_loop_is_needed():
    """The default timers are the event loop's: outside one, construction fails as it always did."""
    with pytest.raises(RuntimeError):
        Lifetimes(Lifetime(), lambda reason: None, lambda: None)
