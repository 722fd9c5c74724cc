"""Giving the heap back after a burst of session ends: when, how often, and only with glibc.
The clock is a fake one: no test here sleeps."""
from __future__ import annotations

import asyncio
import os

import pytest
from fakes import FakeConnector, FakeTransport, open_session, run, turns, turns_until

from websockify.proxy import memory_trim
from websockify.proxy.memory_trim import HeapTrimmer, glibc_malloc_trim, heap_trimmer
from websockify.proxy.pump import Relay


class Handle:
    def __init__(self, callback, args: tuple) -> None:
        self.callback, self.args, self.cancelled = callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """The two things a HeapTrimmer asks of its loop: the time and a timer, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self._due: list[tuple[float, Handle]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback, *args) -> Handle:
        handle = Handle(callback, args)
        self._due.append((when, handle))
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while True:
            due = [(when, handle) for when, handle in self._due if when <= self.now]
            if not due:
                return
            for entry in due:
                self._due.remove(entry)
                handle = entry[1]
                if not handle.cancelled:
                    handle.callback(*handle.args)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def trimmer(timers: Timers, trim: Counter) -> HeapTrimmer:
    return HeapTrimmer(timers, trim, after_ends=4, quiet_s=1.0, max_wait_s=10.0,  # type: ignore[arg-type]
                       interval_s=30.0)


def test_a_few_ends_are_not_worth_a_trim():
    timers, trim = Timers(), Counter()
    heap = trimmer(timers, trim)
    for _ in range(3):
        heap.session_ended()
    timers.advance(100)
    assert trim.calls == 0


def test_a_burst_of_ends_is_trimmed_once_when_it_is_over():
    timers, trim = Timers(), Counter()
    heap = trimmer(timers, trim)
    for _ in range(20):
        heap.session_ended()
        timers.advance(0.5)  # still ending: no trim yet
    assert trim.calls == 0
    timers.advance(0.6)  # one quiet second after the last end
    assert trim.calls == 1
    timers.advance(100)
    assert trim.calls == 1


def test_steady_churn_is_trimmed_at_the_latest_after_the_longest_wait():
    timers, trim = Timers(), Counter()
    heap = trimmer(timers, trim)
    for _ in range(40):  # an end every half second for 20 s: never a quiet second
        heap.session_ended()
        timers.advance(0.5)
    assert trim.calls == 1  # 10 s after the burst began


def test_trims_are_at_least_the_interval_apart():
    timers, trim = Timers(), Counter()
    heap = trimmer(timers, trim)
    for _ in range(4):
        heap.session_ended()
    timers.advance(1.0)
    assert trim.calls == 1
    for _ in range(4):
        heap.session_ended()
    timers.advance(28.0)
    assert trim.calls == 1
    timers.advance(2.5)  # past 30 s after the first
    assert trim.calls == 2


def test_without_malloc_trim_nothing_is_counted_or_set():
    timers = Timers()
    heap = HeapTrimmer(timers, None)  # type: ignore[arg-type]
    assert not heap.enabled
    for _ in range(1000):
        heap.session_ended()
    assert timers._due == []


@pytest.mark.skipif(not hasattr(os, "confstr") or "CS_GNU_LIBC_VERSION" not in os.confstr_names,
                    reason="not glibc")
def test_glibc_has_malloc_trim():
    trim = glibc_malloc_trim()
    assert trim is not None
    trim()


def test_relays_that_end_tell_their_loops_trimmer(monkeypatch):
    trims = Counter()
    monkeypatch.setattr(memory_trim, "_MALLOC_TRIM", trims)

    async def scenario():
        heap = heap_trimmer(asyncio.get_running_loop())
        assert heap is heap_trimmer(asyncio.get_running_loop())
        heap._quiet_s = 0.0  # trim in the next turn after the ends
        for _ in range(memory_trim.TRIM_AFTER_ENDS):
            connector = FakeConnector()
            relay = Relay(FakeTransport(), open_session(), connector, peer="p", write_buffer_bytes=1 << 16,
                          close_timeout_s=1.0)
            relay.start()
            await turns_until(lambda c=connector: c.settled, "the connect")
            await turns(1)
            relay.client_lost()
            relay.target_lost(None)
        await turns_until(lambda: trims.calls == 1, "a trim")
    run(scenario)
