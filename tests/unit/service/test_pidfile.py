"""service/pidfile.py: --pid-file written atomically, stale files replaced, ours only removed."""
from __future__ import annotations

import errno
import os

import pytest

from websockify.errors import StartupError
from websockify.service import pidfile
from websockify.service.pidfile import PidFile


def no_such_pid() -> int:
    """A pid no process can have: above the kernel's limit."""
    with open("/proc/sys/kernel/pid_max") as file:
        return int(file.read()) + 1


def test_write_names_this_process_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "websockify.pid"
    PidFile(str(path)).write()
    assert path.read_text() == f"{os.getpid()}\n"
    assert os.listdir(tmp_path) == ["websockify.pid"]


@pytest.mark.parametrize("text, owner", [("123\n", 123), ("  42  ", 42), ("", None), ("not a pid", None),
                                         ("-5", None)])
def test_owner_reads_a_pid_or_nothing(tmp_path, text, owner):
    path = tmp_path / "pid"
    path.write_text(text)
    assert PidFile(str(path)).owner() == owner


def test_owner_of_a_missing_file_is_none(tmp_path):
    assert PidFile(str(tmp_path / "absent")).owner() is None


def test_an_unreadable_pid_file_is_a_startup_error(tmp_path):
    with pytest.raises(StartupError, match=f"^--pid-file {tmp_path}: Is a directory$"):
        PidFile(str(tmp_path)).owner()


def test_a_stale_file_is_replaced(tmp_path):
    path = tmp_path / "pid"
    path.write_text(f"{no_such_pid()}\n")
    PidFile(str(path)).write()
    assert path.read_text() == f"{os.getpid()}\n"


def test_a_live_websockify_keeps_its_file(tmp_path, monkeypatch):
    path = tmp_path / "pid"
    path.write_text("4242\n")
    monkeypatch.setattr(pidfile, "_running_websockify", lambda pid: pid == 4242)
    with pytest.raises(StartupError, match="websockify is already running as pid 4242"):
        PidFile(str(path)).write()
    assert path.read_text() == "4242\n"


def test_a_live_process_that_is_not_websockify_does_not_count(tmp_path, monkeypatch):
    path = tmp_path / "pid"
    path.write_text("4242\n")
    monkeypatch.setattr(pidfile, "_running_websockify", lambda pid: False)
    PidFile(str(path)).check()


def test_our_own_pid_in_the_file_is_no_conflict(tmp_path, monkeypatch):
    path = tmp_path / "pid"
    path.write_text(f"{os.getpid()}\n")
    monkeypatch.setattr(pidfile, "_running_websockify", lambda pid: True)
    PidFile(str(path)).write()


def test_running_websockify_is_false_for_a_pid_that_does_not_exist():
    assert pidfile._running_websockify(no_such_pid()) is False


def test_a_file_that_cannot_be_written_is_a_startup_error_and_leaves_nothing(tmp_path):
    path = tmp_path / "missing-dir" / "pid"
    with pytest.raises(StartupError, match=f"^--pid-file {path}: No such file or directory$"):
        PidFile(str(path)).write()
    assert os.listdir(tmp_path) == []


def test_a_failed_replace_removes_the_temporary_file(tmp_path, monkeypatch):
    def refuse(source: str, destination: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(pidfile.os, "replace", refuse)
    path = tmp_path / "pid"
    with pytest.raises(StartupError, match=f"^--pid-file {path}: Permission denied$"):
        PidFile(str(path)).write()
    assert os.listdir(tmp_path) == []


def test_remove_deletes_only_a_file_naming_this_process(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    PidFile(str(ours)).write()
    theirs.write_text("4242\n")
    PidFile(str(ours)).remove()
    PidFile(str(theirs)).remove()
    assert not ours.exists() and theirs.read_text() == "4242\n"


def test_remove_is_quiet_when_the_file_is_gone_or_unreadable(tmp_path):
    PidFile(str(tmp_path / "absent")).remove()
    PidFile(str(tmp_path)).remove()  # a directory: owner() raises, remove() does not


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(tmp_path):
    """Issue 17 item 7: FILE.<pid>.tmp was opened through a planted symlink, overwriting its target."""
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    path = tmp_path / "websockify.pid"
    planted = tmp_path / f"websockify.pid.{os.getpid()}.tmp"
    planted.symlink_to(victim)
    PidFile(str(path)).write()
    assert victim.read_text() == "root's file\n"
    assert not path.is_symlink() and path.read_text() == f"{os.getpid()}\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["victim", "websockify.pid", planted.name])


def test_a_pid_file_that_is_a_symlink_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    path = tmp_path / "websockify.pid"
    path.symlink_to(victim)
    PidFile(str(path)).write()
    assert victim.read_text() == "keep\n"
    assert not path.is_symlink() and path.read_text() == f"{os.getpid()}\n"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
