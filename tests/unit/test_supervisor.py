import pytest

from websockify.wrap.supervisor import Backoff, Exit, KeepProxying, Respawn, State, Supervisor


def test_exit_mode_reports_the_status():
    s = Supervisor("exit")
    s.spawned(0)
    assert s.tree_exited(5, 7) == Exit(7)
    assert s.state is State.DONE


def test_ignore_mode_keeps_proxying_and_refuses_waiting():
    s = Supervisor("ignore")
    s.spawned(0)
    assert s.accepting_clients
    assert s.tree_exited(1, 1) == KeepProxying()
    assert not s.accepting_clients


def test_respawn_backs_off_exponentially_with_a_cap_and_resets_after_a_stable_run():
    s = Supervisor("respawn", Backoff(initial_s=1, factor=2, max_s=8, stable_after_s=10))
    delays = []
    now = 0.0
    for _ in range(6):
        s.spawned(now)
        decision = s.tree_exited(now + 1, 1)  # crashed after 1 s: quick
        assert isinstance(decision, Respawn)
        delays.append(decision.delay_s)
        now += 1 + decision.delay_s
    assert delays == [1, 2, 4, 8, 8, 8]
    s.spawned(now)
    assert s.tree_exited(now + 60, 0) == Respawn(1, s.starts + 1)  # ran stably: reset
    assert s.accepting_clients  # clients wait through the backoff


@pytest.mark.parametrize("mode,status,expected", [
    ("exit", 0, 0), ("exit", 143, 143), ("exit", None, 143),
    ("respawn", 0, 143), ("ignore", 1, 143),
])
def test_stop_exit_codes(mode, status, expected):
    s = Supervisor(mode)
    s.spawned(0)
    s.stop(15)
    assert s.stop_exit_code(status) == expected
    assert s.tree_exited(1, 0) == Exit(s.stop_exit_code(0))


def test_unknown_mode():
    with pytest.raises(ValueError):
        Supervisor("sometimes")


def test_clients_see_three_program_states():
    from websockify.wrap.supervisor import ProgramState

    s = Supervisor("respawn")
    assert s.program_state is ProgramState.DOWN  # before the first start
    s.spawned(0.0)
    assert s.program_state is ProgramState.STARTING
    s.ready()
    assert s.program_state is ProgramState.READY
    s.tree_exited(1.0, 1)
    assert s.program_state is ProgramState.STARTING  # backoff: clients wait for the next start
    s.stop(15)
    assert s.program_state is ProgramState.DOWN
    ignoring = Supervisor("ignore")
    ignoring.spawned(0.0)
    ignoring.tree_exited(1.0, 0)
    assert ignoring.program_state is ProgramState.DOWN
