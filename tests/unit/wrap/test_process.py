"""process.py's reaping primitives on real, short-lived children: collect one pid
only, exit codes as a shell reports them, pidfds for children and others alike."""
import os
import select
import signal
import sys

import pytest

from websockify.wrap import process


def wait_exited(pidfd: int) -> None:
    """Block until the pidfd polls readable (the process has exited): no sleeping."""
    readable, _, _ = select.select([pidfd], [], [], 30)
    assert readable, "the child did not exit"


def start(code: str) -> int:
    return process.spawn([sys.executable, "-c", code], dict(os.environ))


def test_an_exit_code_is_collected_once():
    pid = start("raise SystemExit(3)")
    fd = process.open_exit_fd(pid)
    assert fd is not None
    try:
        wait_exited(fd)
        assert process.try_reap(pid) == 3
        with pytest.raises(process.NotOurChild):
            process.try_reap(pid)
    finally:
        os.close(fd)


def test_a_signal_reads_as_128_plus_its_number():
    pid = start("import time; time.sleep(60)")
    fd = process.open_exit_fd(pid)
    assert fd is not None
    try:
        assert process.try_reap(pid) is None  # running
        assert process.is_running(pid)
        process.signal_pid(pid, signal.SIGKILL)
        wait_exited(fd)
        assert process.try_reap(pid) == 128 + signal.SIGKILL
        assert not process.is_running(pid)
    finally:
        os.close(fd)


def test_another_processes_pid_is_not_ours_to_collect():
    with pytest.raises(process.NotOurChild):
        process.try_reap(os.getppid())
    assert process.is_running(os.getpid())


def test_a_pid_that_is_gone_has_no_pidfd():
    pid = start("pass")
    fd = process.open_exit_fd(pid)
    assert fd is not None
    wait_exited(fd)
    os.close(fd)
    process.try_reap(pid)
    assert process.open_exit_fd(pid) is None


def test_an_exited_child_is_named_without_being_collected():
    pid = start("pass")
    fd = process.open_exit_fd(pid)
    assert fd is not None
    try:
        wait_exited(fd)
        assert process.exited_child() == pid
        assert process.exited_child() == pid  # still there: WNOWAIT
        assert process.try_reap(pid) == 0
    finally:
        os.close(fd)
