"""scripts/soak_starve.py without a flood: what fits, the pool, the log count and the verdict."""
import pathlib
import sys

SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # scripts/ is not a package: the soak modules import each other by name

import soak  # noqa: E402
import soak_starve  # noqa: E402
from soak_starve import Attempt, Starvation  # noqa: E402

STAMP = "2026-12-07 12:00:00,000 websockify[4242]"


def test_the_idle_sockets_overflow_the_pool():
    assert soak_starve.pool_for(5000) == 4000 and soak_starve.pool_for(1) == 1


def test_the_idle_sockets_shrink_to_what_the_limit_fits_and_say_so():
    assert soak_starve.sockets_fitting(5000, 20000) == (5000, "")
    assert soak_starve.sockets_fitting(5000, 1024) == (
        768, "the open-file limit (hard 1024) fits 768 idle sockets, not 5000; the starvation phase runs with 768")


def test_the_starvation_phase_is_on_by_default_and_can_run_alone():
    args = soak.parse_args([])
    assert (args.starvation_sockets, args.starvation_hold, args.starvation_only) == (5000, 30, False)
    assert soak.parse_args(["--starvation-only"]).starvation_only


def test_the_log_is_counted_by_kind_leaving_out_honest_sessions(tmp_path):
    log = tmp_path / "websockify.log"
    before = f"{STAMP} INFO listening on 127.0.0.1:1234\n"
    log.write_text(before + "".join([
        f"{STAMP} INFO 127.0.0.1:5000: evicted: the oldest client still sending its request, to make room for "
        "127.0.0.2:6000\n",
        f"{STAMP} INFO evicted: idle before its request: 5123 more in the last 10 s\n",
        f"{STAMP} INFO 127.0.0.1:5001: dropped: sent nothing within 10s\n",
        f"{STAMP} WARNING 127.0.0.1:5002: dropped: 4500 connections open\n",
        f"{STAMP} INFO 127.0.0.2:6000 target=127.0.0.1:7 up=8 down=8 duration=0.01s close=1000\n",
        f"{STAMP} INFO 127.0.0.2:6001: GET / HTTP 503: server busy: too many connections\n",
        "Traceback (most recent call last):\n",
    ]))
    record = Starvation(100, 5, 80)
    record.read_log(log, len(before))
    assert dict(record.log_kinds) == {"evicted": 2, "deadline": 1, "dropped": 1}
    assert record.log_counted["evicted"] == 5123
    assert record.log_other == [f"{STAMP} INFO 127.0.0.2:6001: GET / HTTP 503: server busy: too many connections",
                                "Traceback (most recent call last):"]


def test_one_failed_honest_attempt_fails_the_phase():
    record = Starvation(5000, 30, 4000, attempts=[Attempt(0.01), Attempt(10.0, "attempt 1: handshake: timed out")])
    record.fds_start = record.fds_end = 14
    assert record.failures() == ["starvation: 1 of 2 honest attempts from 127.0.0.2 failed while 5000 idle sockets "
                                 "were open, first: attempt 1: handshake: timed out"]
    assert "result             FAIL" in record.summary()


def test_a_log_past_the_throttle_or_leaked_descriptors_fail_the_phase():
    record = Starvation(5000, 30, 4000, attempts=[Attempt(0.01)] * 30, log_seconds=41)
    record.fds_start, record.fds_end = 14, 20
    record.log_kinds["evicted"] = 4 * 6 + 1  # 4 per 10 s window, 5 windows and the one the flood began in
    failures = record.failures()
    assert failures[0].startswith("starvation: websockify's log is not throttled: {'evicted': 25} lines in 41s")
    assert failures[1] == "starvation: descriptors leaked: 20 open after the flood ended, 14 before it"
    record.log_kinds["evicted"] = 24
    record.fds_end = 14
    assert record.failures() == []
    assert "30 of 30 attempts from 127.0.0.2 succeeded" in record.summary()
