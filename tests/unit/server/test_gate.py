"""The gate: the one place a client is admitted or dropped, and given its deadline."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from websockify.server.admission import Admission
from websockify.server.gate import Entry, Gate, time_left_s


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_admitted_client_gets_a_ticket_and_its_deadline_from_now():
    clock = Clock()
    gate = Gate(Admission(10), handshake_timeout_s=5, clock=clock)
    entry = gate.admit(("192.0.2.1", 40000))
    assert entry is not None and entry.ticket.refusal is None and entry.ticket.ip == "192.0.2.1"
    assert entry.deadline == 105.0
    clock.now = 200.0
    assert gate.admit(("192.0.2.1", 40001)).deadline == 205.0  # type: ignore[union-attr]


def test_a_unix_client_is_admitted_under_no_address():
    entry = Gate(Admission(10, max_per_ip=1), 5, Clock()).admit("")
    assert entry is not None and entry.ticket.ip == ""


def test_past_the_limit_a_ticket_carries_a_503_and_past_the_slack_the_client_is_dropped(caplog):
    admission = Admission(1)
    gate = Gate(admission, 5, Clock())
    served = gate.admit(("192.0.2.1", 1))
    assert served is not None and served.ticket.refusal is None
    served.ticket.head_complete()
    refused = [gate.admit(("192.0.2.2", n)) for n in range(admission.slack)]
    assert all(e is not None and e.ticket.refusal is not None and e.ticket.refusal.status == 503 for e in refused)
    with caplog.at_level(logging.WARNING, logger="websockify.server.gate"):
        assert gate.admit(("192.0.2.3", 9)) is None
    assert f"192.0.2.3:9: dropped: {admission.total} connections open" in caplog.text
    served.ticket.release()
    assert admission.total == admission.slack


def test_an_entry_is_frozen():
    entry = Gate(Admission(1), 5, Clock()).admit("")
    assert entry is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.deadline = 0.0  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")
    assert isinstance(entry, Entry)


@pytest.mark.parametrize("deadline,now,margin,floor,left", [
    (10.0, 4.0, 0.0, 0.001, 6.0),
    (10.0, 4.0, 0.1, 0.01, 5.9),
    (10.0, 10.0, 0.0, 0.001, 0.001),  # at the deadline: a timeout that still means "now"
    (10.0, 12.0, 0.1, 0.01, 0.01),  # past it
])
def test_time_left(deadline, now, margin, floor, left):
    assert time_left_s(deadline, now, margin_s=margin, floor_s=floor) == pytest.approx(left)


def test_past_the_address_cap_the_client_is_closed_and_the_log_is_throttled(caplog):
    admission = Admission(10, max_per_ip=2)
    clock = Clock()
    gate = Gate(admission, 5, clock)
    assert gate.admit(("192.0.2.1", 1)) is not None and gate.admit(("192.0.2.1", 2)) is not None
    with caplog.at_level(logging.INFO, logger="websockify.server.gate"):
        for port in range(3, 5003):
            assert gate.admit(("192.0.2.1", port)) is None
        assert admission.total == 2  # none of them took a slot
        clock.now += 10
        assert gate.admit(("192.0.2.1", 9)) is None  # the next window: first the count of the last
    lines = caplog.text.splitlines()
    assert len(lines) <= 5, lines
    assert "dropped: too many connections from one address: 4997 more in the last 10 s" in caplog.text


def test_a_full_pool_evicts_the_oldest_idle_client_and_says_so(caplog):
    admission = Admission(2)
    gate = Gate(admission, 5, Clock())
    closed: list[int] = []
    for port in (1, 2):
        entry = gate.admit(("192.0.2.1", port))
        assert entry is not None
        entry.ticket.on_evict = lambda port=port: closed.append(port)
    with caplog.at_level(logging.INFO, logger="websockify.server.gate"):
        honest = gate.admit(("192.0.2.2", 7))
    assert honest is not None and honest.ticket.refusal is None and closed == [1]
    assert "192.0.2.1: evicted: the oldest client still sending its request, to make room for 192.0.2.2:7" \
        in caplog.text
