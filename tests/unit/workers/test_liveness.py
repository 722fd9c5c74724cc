"""The parent's bookkeeping of its workers' heartbeats, on a clock the test moves."""
from websockify.workers import control
from websockify.workers.liveness import CHECK_INTERVAL_S, SILENCE_LIMIT_S, Liveness, Silent


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def watching(start_limit_s: float = 30.0) -> tuple[Liveness, Clock]:
    clock = Clock()
    return Liveness(start_limit_s=start_limit_s, clock=clock), clock


def run_checks(liveness: Liveness, clock: Clock, seconds: float, heard: tuple[int, ...] = ()) -> list[Silent]:
    """Check once a second for `seconds`, hearing from `heard` before each check, as the loop would."""
    found = []
    for _ in range(int(seconds / CHECK_INTERVAL_S)):
        clock.now_s += CHECK_INTERVAL_S
        for pid in heard:
            liveness.heard(pid)
        found += liveness.check()
    return found


def test_the_defaults_leave_room_for_many_missed_beats():
    assert SILENCE_LIMIT_S >= 5 * control.HEARTBEAT_INTERVAL_S
    assert CHECK_INTERVAL_S <= SILENCE_LIMIT_S / 5


def test_a_worker_that_beats_is_never_silent():
    liveness, clock = watching()
    liveness.started(7)
    assert run_checks(liveness, clock, 600, heard=(7,)) == []


def test_a_busy_worker_heard_just_within_the_limit_is_kept():
    liveness, clock = watching()
    liveness.started(7)
    liveness.heard(7)
    for _ in range(5):
        clock.now_s += SILENCE_LIMIT_S
        assert liveness.check() == []
        liveness.heard(7)


def test_a_silent_worker_is_reported_once_with_how_long_it_was_silent():
    liveness, clock = watching()
    liveness.started(7)
    liveness.started(8)
    assert run_checks(liveness, clock, 3, heard=(7, 8)) == []
    # 8 stops: it beat last at the third check.
    found = run_checks(liveness, clock, SILENCE_LIMIT_S + 5, heard=(7,))
    assert found == [Silent(8, SILENCE_LIMIT_S + 1)]  # the first check past the limit
    assert run_checks(liveness, clock, 30, heard=(7,)) == []  # condemned: not again
    liveness.heard(8)  # a last word before the kill lands changes nothing
    assert run_checks(liveness, clock, 30, heard=(7,)) == []


def test_a_new_worker_has_its_startup_time_then_the_silence_limit():
    liveness, clock = watching(start_limit_s=30.0)
    liveness.started(7)
    assert run_checks(liveness, clock, 30) == []  # still starting: nothing heard yet is fine
    assert run_checks(liveness, clock, 1) == [Silent(7, 31.0)]
    liveness.started(9)
    run_checks(liveness, clock, 2)
    liveness.heard(9)  # listening: from now on the silence limit
    found = run_checks(liveness, clock, SILENCE_LIMIT_S + 1)
    assert found == [Silent(9, SILENCE_LIMIT_S + 1)]


def test_a_worker_gone_is_forgotten():
    liveness, clock = watching()
    liveness.started(7)
    liveness.forget(7)
    liveness.forget(7)  # twice: the reaper and a kill may both say so
    liveness.heard(7)  # a packet still queued from it
    assert run_checks(liveness, clock, 60) == []


def test_time_the_parent_did_not_run_is_not_counted():
    # Ctrl-Z stops the whole group; at fg the parent may check before the workers speak.
    liveness, clock = watching()
    liveness.started(7)
    assert run_checks(liveness, clock, 5, heard=(7,)) == []
    clock.now_s += 300  # stopped for five minutes, the workers with it
    assert liveness.check() == []
    assert run_checks(liveness, clock, 2, heard=(7,)) == []
    # A worker that stays silent after the pause is still found, counting from it.
    liveness.started(8)
    liveness.heard(8)
    clock.now_s += 300
    assert liveness.check() == []
    found = run_checks(liveness, clock, SILENCE_LIMIT_S + 2, heard=(7,))
    assert [silent.pid for silent in found] == [8]
    assert SILENCE_LIMIT_S < found[0].silent_s <= SILENCE_LIMIT_S + 2 * CHECK_INTERVAL_S


def test_checks_a_little_late_do_not_excuse_a_silent_worker():
    liveness, clock = watching()
    liveness.started(7)
    liveness.heard(7)
    found: list[Silent] = []
    for _ in range(int(SILENCE_LIMIT_S) + 1):
        clock.now_s += CHECK_INTERVAL_S * 1.9  # a busy parent, but not one that stopped
        found += liveness.check()
    assert [silent.pid for silent in found] == [7]


def test_the_first_check_does_not_count_a_stop_either():
    liveness, clock = watching()
    liveness.started(7)
    clock.now_s += 20  # the workers start
    liveness.heard(7)
    liveness.begin()
    clock.now_s += 15  # stopped with its workers before the first check
    assert liveness.check() == []
    assert run_checks(liveness, clock, 2, heard=(7,)) == []
