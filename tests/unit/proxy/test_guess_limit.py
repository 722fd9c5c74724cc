"""The per-address allowance of unknown tokens (a leaky bucket)."""
from __future__ import annotations

from websockify.proxy.guess_limit import GuessLimit, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_a_second():
    clock = Clock()
    limit = GuessLimit(clock, burst=3, rate_per_s=1.0)
    for _ in range(3):
        assert limit.retry_after_s("a") == 0
        limit.failed("a")
    assert limit.retry_after_s("a") == 1.0
    assert limit.retry_after_s("b") == 0  # every address has its own
    clock.now += 0.5
    assert limit.retry_after_s("a") == 0.5
    clock.now += 0.5
    assert limit.retry_after_s("a") == 0
    limit.failed("a")
    assert limit.retry_after_s("a") == 1.0


def test_guessing_while_refused_costs_nothing_more():
    """A refused request is not a failure: the wait never grows past one refill."""
    clock = Clock()
    limit = GuessLimit(clock, burst=2, rate_per_s=2.0)
    limit.failed("a")
    limit.failed("a")
    for _ in range(100):
        assert limit.retry_after_s("a") == 0.5


def test_the_table_is_bounded_and_forgets_drained_addresses_first():
    clock = Clock()
    limit = GuessLimit(clock, burst=5, rate_per_s=1.0, max_addresses=80)
    limit.failed("old")
    clock.now += 10  # drained
    for _ in range(5):
        limit.failed("busy")
    for n in range(80):
        limit.failed(f"n{n}")
    assert len(limit) <= 80
    assert limit.retry_after_s("busy") == 0  # forgotten: its failures are forgiven, nothing worse
    assert limit.retry_after_s("old") == 0


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after_header(0.01) == (("Retry-After", "1"),)
    assert retry_after_header(2.2) == (("Retry-After", "3"),)
