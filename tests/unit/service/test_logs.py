"""service/logs.py: where log lines go and what they look like.

setup_logging changes the process's logging; the `restored_logging` fixture
puts back what it changes, so tests after these see logging as before.
"""
from __future__ import annotations

import logging
import os
import re
import sys

import pytest

from websockify.config import LogSettings
from websockify.errors import ConfigError
from websockify.service import logs
from websockify.service.logs import TRAFFIC_LOGGER, setup_logging, stderr_is_journal, syslog_address


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("websockify.test", level, __file__, 1, message, None, None)


def failed(message: str, exc: BaseException, level: int = logging.ERROR) -> logging.LogRecord:
    """A record logged with exc_info, as log.exception() makes one."""
    try:
        raise exc
    except BaseException as raised:
        return logging.LogRecord("websockify.test", level, __file__, 1, message, None,
                                 (type(raised), raised, raised.__traceback__))


# -- formats ------------------------------------------------------------------

@pytest.mark.parametrize("level, priority", [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                                             (logging.ERROR, 3), (logging.CRITICAL, 2), (25, 6)])
def test_the_journal_gets_a_priority_prefix_per_level(level, priority):
    assert logs._JournalFormatter().format(record("hello", level)) == f"<{priority}>hello"


def test_each_line_of_a_journal_entry_has_the_prefix():
    lines = logs._JournalFormatter().format(failed("one", ValueError("two"), logging.ERROR)).split("\n")
    assert lines[0] == "<3>one" and lines[-1] == "<3>ValueError: two"
    assert all(line.startswith("<3>") for line in lines) and len(lines) > 3


def test_bsd_syslog_lines_name_websockify_and_the_pid():
    line = logs._SyslogFormatter(legacy=True).format(failed("first", ValueError("second")))
    assert line.startswith(f"websockify[{os.getpid()}]: first | Traceback (most recent call last): | ")
    assert line.endswith(" | ValueError: second") and "\n" not in line


def test_rfc5424_syslog_lines_have_version_time_host_app_and_pid():
    line = logs._SyslogFormatter(legacy=False).format(record("hello"))
    match = re.fullmatch(r"1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) websockify (\d+) - - hello", line)
    assert match and int(match.group(3)) == os.getpid()


# -- --syslog addresses --------------------------------------------------------

@pytest.mark.parametrize("text, address", [("/dev/log", "/dev/log"), ("./log", "./log"),
                                           ("logs.example:514", ("logs.example", 514)),
                                           ("127.0.0.1:514", ("127.0.0.1", 514)),
                                           ("[::1]:514", ("::1", 514))])
def test_syslog_address_is_a_socket_path_or_host_and_port(text, address):
    assert syslog_address(text) == address


@pytest.mark.parametrize("text", ["localhost", ":514", ""])
def test_syslog_address_without_host_and_port_is_named(text):
    with pytest.raises(ConfigError, match=re.escape(f"--syslog: {text!r} is neither a socket path nor HOST:PORT")):
        syslog_address(text)


def test_syslog_address_with_a_bad_port_says_so():
    with pytest.raises(ConfigError, match="^--syslog: "):
        syslog_address("localhost:port")


# -- is standard error the journal? ---------------------------------------------

@pytest.fixture
def stderr_file(tmp_path, monkeypatch):
    """Make a file standard error; its stat. Called in the test: pytest's capture resets
    sys.stderr between a fixture's set-up and the test."""
    with open(tmp_path / "stderr", "w") as file:
        def install() -> os.stat_result:
            monkeypatch.setattr(sys, "stderr", file)
            return os.fstat(file.fileno())
        yield install


def test_stderr_is_the_journal_when_journal_stream_names_it(stderr_file, monkeypatch):
    stat = stderr_file()
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    assert stderr_is_journal() is True


@pytest.mark.parametrize("value", [None, "", "1:2", "junk", "12:"])
def test_stderr_is_not_the_journal_otherwise(stderr_file, monkeypatch, value):
    stderr_file()
    if value is None:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    else:
        monkeypatch.setenv("JOURNAL_STREAM", value)
    assert stderr_is_journal() is False


def test_a_stderr_without_a_descriptor_is_not_the_journal(monkeypatch):
    class NoDescriptor:
        def fileno(self) -> int:
            raise ValueError("no descriptor")

    monkeypatch.setattr(sys, "stderr", NoDescriptor())
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert stderr_is_journal() is False


# -- setup_logging ------------------------------------------------------------------

def test_defaults_log_info_to_stderr_and_keep_payloads_out(restored_logging, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging(LogSettings())
    root = logging.getLogger()
    assert [type(h) for h in root.handlers] == [logging.StreamHandler]
    assert root.level == logging.INFO
    assert logging.getLogger("websockets").level == logging.WARNING
    assert logging.getLogger(TRAFFIC_LOGGER).level == logging.WARNING


def test_verbose_and_traffic_open_their_levels(restored_logging):
    setup_logging(LogSettings(verbose=True, traffic=True))
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger(TRAFFIC_LOGGER).level == logging.INFO


def test_a_log_file_gets_timestamped_lines(restored_logging, tmp_path):
    path = tmp_path / "websockify.log"
    setup_logging(LogSettings(log_file=str(path)))
    logging.getLogger("websockify.test").warning("into the file")
    for handler in logging.getLogger().handlers:
        handler.flush()
    line = path.read_text()
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} websockify\[{os.getpid()}\] WARNING "
                        r"into the file\n", line), line


def test_a_log_file_that_cannot_be_opened_is_a_config_error(restored_logging, tmp_path):
    handlers = logging.getLogger().handlers[:]
    path = tmp_path / "missing" / "websockify.log"
    with pytest.raises(ConfigError, match=f"^--log-file: cannot open {path}: No such file or directory$"):
        setup_logging(LogSettings(log_file=str(path)))
    assert logging.getLogger().handlers == handlers  # nothing installed half-way


def test_a_syslog_socket_that_is_not_there_is_a_config_error(restored_logging, tmp_path):
    path = tmp_path / "no-log"
    with pytest.raises(ConfigError, match=f"^--syslog: cannot reach {path}: No such file or directory$"):
        setup_logging(LogSettings(syslog=str(path)))


# -- --log-file and symbolic links (issue 17, item 7) ------------------------------

def _flush_all() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def test_a_log_file_that_is_a_symlink_is_refused_in_one_line(restored_logging, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    path = tmp_path / "websockify.log"
    path.symlink_to(victim)
    handlers = logging.getLogger().handlers[:]
    with pytest.raises(ConfigError) as caught:
        setup_logging(LogSettings(log_file=str(path)))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"--log-file: {path} is a symbolic link, refused")
    assert "point --log-file at the real file" in message
    assert victim.read_text() == "untouched\n"
    assert logging.getLogger().handlers == handlers


def test_the_log_file_is_reopened_after_logrotate_moves_it(restored_logging, tmp_path):
    path = tmp_path / "websockify.log"
    setup_logging(LogSettings(log_file=str(path)))
    logging.getLogger("websockify.test").warning("before")
    path.rename(tmp_path / "websockify.log.1")
    logging.getLogger("websockify.test").warning("after")
    _flush_all()
    assert "before" in (tmp_path / "websockify.log.1").read_text()
    assert "after" in path.read_text() and "before" not in path.read_text()


def test_a_symlink_planted_at_reopen_time_is_not_followed(restored_logging, tmp_path, capsys):
    path = tmp_path / "websockify.log"
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    setup_logging(LogSettings(log_file=str(path)))
    logging.getLogger("websockify.test").warning("first")
    path.rename(tmp_path / "websockify.log.1")
    path.symlink_to(victim)
    for _ in range(3):
        logging.getLogger("websockify.test").warning("planted")
    _flush_all()
    assert victim.read_text() == "untouched\n"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "cannot reopen" in line]
    assert len(warnings) == 1 and "symbolic link" in warnings[0]
    path.unlink()  # the link goes, a regular file is made again: lines flow again
    logging.getLogger("websockify.test").warning("back")
    _flush_all()
    assert "back" in path.read_text() and not path.is_symlink()
    assert victim.read_text() == "untouched\n"
