"""metrics/meter.py and prometheus.py: outcomes by close code, and what a meter counts,
read back from a real prometheus_client registry."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from websockify.errors import Refusal
from websockify.metrics.meter import OUTCOMES, outcome
from websockify.metrics.prometheus import PrometheusMeter


@pytest.mark.parametrize(("code", "expected"), [
    (1000, "normal"), (1005, "normal"), (1001, "going_away"), (1002, "client_error"), (1009, "client_error"),
    (1011, "server_error"), (1013, "server_error"), (1006, "abnormal"), (None, "abnormal"), (4000, "other"),
    (3001, "other"),
])
def test_outcome_by_close_code(code, expected):
    assert outcome(code) == expected
    assert expected in OUTCOMES


def test_every_label_value_is_there_before_the_first_event():
    registry = CollectorRegistry()
    PrometheusMeter(registry, serving=True, supervising=True)
    for name in OUTCOMES:
        assert registry.get_sample_value("websockify_sessions_total", {"outcome": name}) == 0
    for reason in Refusal:
        assert registry.get_sample_value("websockify_handshake_failures_total", {"reason": reason.value}) == 0


def test_a_session_and_its_end_are_counted_once():
    registry = CollectorRegistry()
    meter = PrometheusMeter(registry, serving=True, supervising=False)
    meter.session_started()
    assert registry.get_sample_value("websockify_sessions_open") == 1
    meter.bytes_relayed(4, 0)
    meter.bytes_relayed(6, 20)
    meter.session_ended(1005)
    meter.handshake_failed(Refusal.ORIGIN)
    meter.target_connected(0.002, False)
    meter.token_looked_up(0.3)
    assert registry.get_sample_value("websockify_sessions_open") == 0
    assert registry.get_sample_value("websockify_sessions_total", {"outcome": "normal"}) == 1
    assert registry.get_sample_value("websockify_relayed_bytes_total", {"direction": "up"}) == 10
    assert registry.get_sample_value("websockify_relayed_bytes_total", {"direction": "down"}) == 20
    assert registry.get_sample_value("websockify_handshake_failures_total", {"reason": "origin"}) == 1
    assert registry.get_sample_value("websockify_target_connect_seconds_count", {"result": "failed"}) == 1
    assert registry.get_sample_value("websockify_token_lookup_seconds_bucket", {"le": "0.25"}) == 0
    assert registry.get_sample_value("websockify_token_lookup_seconds_bucket", {"le": "0.5"}) == 1
    # Not supervising: the parent's metrics are not made here.
    assert registry.get_sample_value("websockify_worker_restarts_total") is None
    meter.worker_restarted()  # and counting them is a no-op, not an error

