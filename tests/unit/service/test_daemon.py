"""service/daemon.py: the report from the daemon to the waiting command line.

The forks themselves are the integration tests' (tests/integration/test_daemon.py);
here the two ends of the pipe are tested in one process, os._exit replaced.
"""
from __future__ import annotations

import os

import pytest

from websockify.service import daemon
from websockify.service.daemon import NO_REPORT, StartupReport


class Exited(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


@pytest.fixture
def pipe():
    """(read end, write end); the code under test closes the write end, the read end is closed here."""
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_ready_is_one_line_and_closes_the_pipe(pipe):
    read_end, write_end = pipe
    StartupReport(write_end).ready()
    assert closed(write_end)
    assert read_all(read_end) == b"ready\n"


def test_a_failure_carries_its_exit_code_and_line(pipe):
    read_end, write_end = pipe
    StartupReport(write_end).failed(3, "websockify: error: --pid-file /run/x.pid: Permission denied")
    assert read_all(read_end) == b"error 3 websockify: error: --pid-file /run/x.pid: Permission denied\n"


def test_only_the_first_report_is_sent(pipe):
    read_end, write_end = pipe
    report = StartupReport(write_end)
    report.ready()
    report.failed(1, "too late")  # the descriptor is closed: nothing written, nothing raised
    assert read_all(read_end) == b"ready\n"


def test_a_command_line_that_is_gone_is_not_an_error():
    read_end, write_end = os.pipe()
    os.close(read_end)  # killed while waiting: the write fails with EPIPE
    StartupReport(write_end).ready()
    assert closed(write_end)


def test_no_report_without_a_daemon():
    NO_REPORT.ready()
    NO_REPORT.failed(1, "nobody listens")


@pytest.fixture
def waiting(monkeypatch):
    """_wait_for_report with os._exit raising, and no first child to wait for."""
    def exit_(code: int) -> None:
        raise Exited(code)

    def no_child() -> tuple[int, int]:
        raise ChildProcessError

    monkeypatch.setattr(daemon.os, "_exit", exit_)
    monkeypatch.setattr(daemon.os, "wait", no_child)

    def wait_for(report: bytes) -> int:
        read_end, write_end = os.pipe()
        os.write(write_end, report)
        os.close(write_end)
        with pytest.raises(Exited) as exited:
            daemon._wait_for_report(read_end)
        assert closed(read_end)
        return exited.value.code
    return wait_for


def test_the_command_line_exits_0_when_the_daemon_is_ready(waiting, capsys):
    assert waiting(b"ready\n") == 0
    assert capsys.readouterr().err == ""


def test_the_command_line_prints_the_daemons_error_and_exits_with_its_code(waiting, capsys):
    assert waiting(b"error 75 websockify: error: cannot listen on 127.0.0.1:80: Permission denied\n") == 75
    assert capsys.readouterr().err == "websockify: error: cannot listen on 127.0.0.1:80: Permission denied\n"


def test_a_daemon_that_died_without_a_word_is_reported(waiting, capsys):
    assert waiting(b"") == 1
    assert capsys.readouterr().err == "websockify: error: the daemon exited while starting (see its log)\n"


def test_a_long_report_is_read_whole(waiting, capsys):
    line = "x" * 10000  # more than one read
    assert waiting(f"error 2 {line}\n".encode()) == 2
    assert capsys.readouterr().err == line + "\n"
