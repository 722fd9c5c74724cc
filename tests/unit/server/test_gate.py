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
