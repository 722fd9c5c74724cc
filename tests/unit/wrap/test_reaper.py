"""The reaper: each exit goes to whoever watched that pid, and only that pid is collected."""

import pytest

from .fakes import FakeLoop, Kernel


@pytest.fixture
def loop() -> FakeLoop:
    return FakeLoop()


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


def test_an_exit_goes_to_the_callback_of_that_pid_only(loop, kernel):
    kernel.children.update({10: None, 11: None})
    reaper = kernel.reaper(loop)
    heard: list[tuple[str, int, int | None]] = []
    reaper.watch(10, lambda pid, code: heard.append(("a", pid, code)))
    reaper.watch(11, lambda pid, code: heard.append(("b", pid, code)))
    kernel.children[11] = 137
    loop.fire(1011)
    assert heard == [("b", 11, 137)]
    assert kernel.reaped == [11] and kernel.closed == [1011] and 1011 not in loop.readers
    assert reaper.is_watched(10) and not reaper.is_watched(11)


def test_a_child_not_yet_collectable_is_asked_again(loop, kernel):
    """A multi-threaded child: its pidfd fires before waitpid can collect it."""
    kernel.children[10] = None
    reaper = kernel.reaper(loop)
    heard: list[int | None] = []
    reaper.watch(10, lambda pid, code: heard.append(code))
    loop.fire(1010)
    assert heard == [] and 1010 in loop.readers
    kernel.children[10] = 0
    loop.fire(1010)
    assert heard == [0]


def test_a_process_that_is_not_our_child_is_reported_without_a_status(loop, kernel):
    kernel.others[20] = True
    reaper = kernel.reaper(loop)
    heard: list[tuple[int, int | None]] = []
    reaper.watch(20, lambda pid, code: heard.append((pid, code)))
    kernel.others[20] = False
    loop.fire(1020)
    assert heard == [(20, None)] and kernel.reaped == []


def test_a_process_gone_before_it_was_watched_is_reported_on_the_next_turn(loop, kernel):
    reaper = kernel.reaper(loop)
    heard: list[tuple[int, int | None]] = []
    reaper.watch(30, lambda pid, code: heard.append((pid, code)))
    assert heard == []
    loop.run_soon()
    assert heard == [(30, None)]


def test_forget_means_nobody_hears(loop, kernel):
    kernel.children[10] = None
    reaper = kernel.reaper(loop)
    heard: list[int] = []
    reaper.watch(10, lambda pid, code: heard.append(pid))
    reaper.forget(10)
    assert loop.readers == {} and kernel.closed == [1010]
    kernel.children[10] = 0
    reaper.check_now()
    assert heard == [] and kernel.reaped == []  # left for whoever waits for it


def test_watched_by_others_names_the_pids_of_other_owners(loop, kernel):
    kernel.children.update({1: None, 2: None, 3: None})
    reaper = kernel.reaper(loop)

    class Owner:
        def exited(self, pid: int, code: int | None) -> None:
            pass

    owner = Owner()
    reaper.watch(1, owner.exited)
    reaper.watch(2, owner.exited)  # a bound method again: the same owner
    reaper.watch(3, lambda pid, code: None)
    assert reaper.watched_by_others(owner.exited) == [3]


def test_without_pidfds_the_watched_pids_are_checked_on_a_timer(loop, kernel):
    kernel.pidfds = False
    kernel.children[10] = None
    kernel.others[20] = True
    reaper = kernel.reaper(loop)
    heard: list[tuple[int, int | None]] = []
    reaper.watch(10, lambda pid, code: heard.append((pid, code)))
    reaper.watch(20, lambda pid, code: heard.append((pid, code)))
    assert len(loop.timers) == 1 and loop.readers == {}
    loop.run_timers()
    assert heard == [] and len(loop.timers) == 1  # both still run
    kernel.children[10] = 2
    kernel.others[20] = False
    loop.run_timers()
    assert sorted(heard) == [(10, 2), (20, None)]
    assert loop.timers == []  # nothing left to watch, nothing polls


def test_close_stops_everything(loop, kernel):
    kernel.children.update({10: None, 11: None})
    reaper = kernel.reaper(loop)
    reaper.watch(10, lambda pid, code: None)
    reaper.watch(11, lambda pid, code: None)
    reaper.close()
    assert loop.readers == {} and sorted(kernel.closed) == [1010, 1011]
    assert not reaper.is_watched(10)


def test_orphans_that_exit_unwatched_are_handed_to_the_adopter(loop, kernel):
    """A subreaper's orphans: re-parented to us with no pidfd open, they exit unseen."""
    kernel.children.update({10: None, 40: 0, 41: 9})  # 40 and 41: orphans, exited
    reaper = kernel.reaper(loop)
    reaper.watch(10, lambda pid, code: None)
    heard: list[tuple[int, int | None]] = []
    reaper.adopt_orphans(lambda pid: reaper.watch(pid, lambda pid, code: heard.append((pid, code))))
    assert heard == [] and len(loop.timers) == 1  # nothing happens before the check
    loop.run_timers()
    assert sorted(heard) == [(40, 0), (41, 9)] and sorted(kernel.reaped) == [40, 41]
    assert len(loop.timers) == 1 and reaper.is_watched(10)


def test_an_exited_child_with_an_owner_is_left_to_its_owner(loop, kernel):
    kernel.children[10] = None
    reaper = kernel.reaper(loop)
    owner: list[int] = []
    reaper.watch(10, lambda pid, code: owner.append(pid))
    adopted: list[int] = []
    reaper.adopt_orphans(adopted.append)
    kernel.children[10] = 0
    loop.run_timers()
    assert adopted == [] and owner == [] and kernel.reaped == []  # its pidfd will tell its owner
    loop.fire(1010)
    assert owner == [10]


def test_an_orphan_nobody_takes_is_not_collected(loop, kernel):
    kernel.children[50] = 0
    reaper = kernel.reaper(loop)
    offered: list[int] = []
    reaper.adopt_orphans(offered.append)  # looks, but does not watch it
    loop.run_timers()
    assert offered == [50] and kernel.reaped == []
