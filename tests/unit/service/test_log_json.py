"""service/log_json.py: `--log-format json`, one JSON object per record and line, escaped and
bounded as the text format is (issue 19, item 7).

setup_logging changes the process's logging; the `restored_logging` fixture puts back what it
changes."""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websockify.config import LogSettings
from websockify.protocol.logsafe import escape_controls
from websockify.service import logs
from websockify.service.log_bounds import LINE_LIMIT, RECORD_LIMIT
from websockify.service.log_json import JsonFormatter, encoded_length
from websockify.service.logs import setup_logging

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
# What a client may put into a path or a header: CSI, NEL, a forged line, a line separator,
# a right-to-left override, a lone surrogate (what surrogateescape makes of a bad UTF-8 byte).
HOSTILE = "\x1b[2J\x9b31m\x85\r\nINFO forged\u2028\u202e\udcff"
SESSION_END = {"client": "127.0.0.1:50000", "proxy": None, "target": "127.0.0.1:5900", "bytes_up": 11,
               "bytes_down": 22, "duration_s": 1.234, "close_code": 1000, "close_reason": None, "token": "abcd…",
               "subprotocol": "binary", "tls_version": None, "failure": None}


def record(message: str = "hello", *args: object, level: int = logging.INFO, event: str | None = None,
           fields: dict | None = None, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException as raised:
            exc_info = (type(raised), raised, raised.__traceback__)
    made = logging.LogRecord("websockify.test", level, __file__, 1, message, args or None, exc_info)
    if event is not None:
        made.event = event
    if fields is not None:
        made.fields = fields
    return made


def one_object(line: str) -> dict:
    """The object of a line that is one line of printable ASCII and one JSON object."""
    assert "\n" not in line and "\r" not in line
    assert line.isascii() and line.isprintable(), line
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def controls(text: str) -> list[str]:
    """Characters a terminal or a log viewer would act on rather than show, but a traceback's own
    newlines (one `\\n` escape each in the line)."""
    return [c for c in text if c != "\n" and (unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")
                                               or c in "\u202e\u2066")]


def strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [key, *strings(item)]]
    return [value] if isinstance(value, str) else []


# -- keys ------------------------------------------------------------------------------

def test_a_record_without_fields_has_the_common_keys_only():
    made = record("listening on %s:%d", "127.0.0.1", 6080)
    line = one_object(JsonFormatter().format(made))
    assert list(line) == ["time", "level", "logger", "pid", "message"]
    assert re.fullmatch(TIME, line["time"]) and line["time"].endswith(f".{int(made.msecs):03d}Z")
    assert (line["level"], line["logger"], line["pid"]) == ("INFO", "websockify.test", os.getpid())
    assert line["message"] == "listening on 127.0.0.1:6080"


def test_the_time_is_utc():
    made = record()
    made.created, made.msecs = 1796691723.456, 456.0  # 2026-12-08T01:02:03.456Z
    assert one_object(JsonFormatter().format(made))["time"] == "2026-12-08T01:02:03.456Z"


def test_an_event_and_its_fields_follow_the_message_in_order():
    line = one_object(JsonFormatter().format(record("session ended", event="session_end", fields=SESSION_END)))
    assert list(line) == ["time", "level", "logger", "pid", "message", "event", *SESSION_END]
    assert line["event"] == "session_end"
    assert {key: line[key] for key in SESSION_END} == SESSION_END  # types kept: int, float, None, str


def test_a_field_never_overwrites_a_key_of_the_record():
    colliding = {"time": "x", "level": "x", "logger": "x", "pid": 0, "message": "x", "event": "x",
                 "exception": "x", "status": 403}
    line = one_object(JsonFormatter().format(record("refused", level=logging.WARNING, event="handshake_failed",
                                                    fields=colliding)))
    assert line["level"] == "WARNING" and line["logger"] == "websockify.test" and line["pid"] == os.getpid()
    assert line["message"] == "refused" and line["event"] == "handshake_failed" and line["time"] != "x"
    assert "exception" not in line and line["status"] == 403


def test_values_json_cannot_hold_become_null_or_text():
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    fields = {"nan": float("nan"), "inf": float("inf"), "huge": 10 ** 30, "flag": True, "obj": Unprintable(),
              7: "a key that is no string"}
    line = one_object(JsonFormatter().format(record(fields=fields)))
    assert (line["nan"], line["inf"], line["huge"], line["flag"]) == (None, None, None, True)
    assert line["obj"] == "<str() failed>" and line["7"] == "a key that is no string"


def test_fields_that_are_no_dict_are_ignored():
    line = one_object(JsonFormatter().format(record(fields=["client", "x"])))  # type: ignore[arg-type]
    assert list(line) == ["time", "level", "logger", "pid", "message"]


def test_an_exception_is_the_traceback_the_text_format_writes():
    made = record("the auth plugin failed", level=logging.ERROR, exc=RuntimeError("plugin bug"))
    line = one_object(JsonFormatter().format(made))
    text = logs._SafeFormatter("%(message)s").format(made)
    assert line["message"] == "the auth plugin failed"
    assert line["exception"] == text.split("\n", 1)[1]
    assert line["exception"].startswith("Traceback (most recent call last):\n")
    assert line["exception"].endswith("\nRuntimeError: plugin bug")


def test_a_traceback_formatted_elsewhere_and_a_stack_are_escaped_too():
    made = record("m")
    made.exc_text = "Traceback:\nError: \x9bbad"
    made.stack_info = "Stack:\n  \x1b[2J"
    line = one_object(JsonFormatter().format(made))
    assert line["exception"] == "Traceback:\nError: \\x9bbad"
    assert line["stack"] == "Stack:\n  \\x1b[2J"


# -- escaping ----------------------------------------------------------------------------

def test_controls_and_lone_surrogates_are_escaped_as_the_text_format_escapes_them():
    made = record("path %s", HOSTILE, event="handshake_failed", fields={"path": HOSTILE, HOSTILE: 1})
    raw = JsonFormatter().format(made)
    line = one_object(raw)
    assert line["message"] == "path " + escape_controls(HOSTILE)
    assert line["message"] == logs._SafeFormatter("%(message)s").format(made)
    assert line["path"] == escape_controls(HOSTILE) and line[escape_controls(HOSTILE)] == 1
    assert not any(controls(text) or "\n" in text for text in strings(line))
    assert "\\\\udcff" in raw  # the surrogate as the text \udcff: valid UTF-8 and UTF-16 for any reader


def test_non_ascii_text_is_kept_and_written_in_ascii():
    raw = JsonFormatter().format(record("caf\u00e9 \u6771\u4eac \U0001f600"))
    assert one_object(raw)["message"] == "caf\u00e9 \u6771\u4eac \U0001f600"


# -- bounds ------------------------------------------------------------------------------

@pytest.mark.parametrize("message", ["x" * 20000, "\u00e9" * 20000, "\x9b" * 5000, '"' * 5000])
def test_a_long_message_is_cut_with_a_note_to_the_line_limit(message):
    raw = JsonFormatter().format(record("%s", message))
    text = one_object(raw)["message"]
    assert encoded_length(text) <= LINE_LIMIT and len(raw) <= RECORD_LIMIT
    assert text.endswith(f"... [cut: {len(message)} characters]")
    shown = text[:text.index("... [cut")]
    assert escape_controls(message).startswith(shown) and len(shown) > 100


def test_a_cut_never_ends_on_half_an_escape():
    text = one_object(JsonFormatter().format(record("%s", "\x9b" * 5000)))["message"]
    assert re.fullmatch(r"(\\x9b)+\.\.\. \[cut: 5000 characters\]", text)


def test_a_deep_traceback_keeps_its_innermost_frames_within_the_record_limit(deep_traceback_record):
    made = deep_traceback_record("at the bottom " + "\u00e9\x85" * 3000)
    raw = JsonFormatter().format(made)
    line = one_object(raw)
    assert len(raw) <= RECORD_LIMIT
    assert re.match(r"\.\.\. \[cut: \d+ lines of the traceback\]\n", line["exception"])
    assert "RuntimeError: at the bottom \u00e9\\x85\u00e9\\x85" in line["exception"]
    assert line["exception"].endswith(" characters]")


def test_many_long_fields_still_leave_room_for_the_traceback():
    fields = {f"field{i}": "\u00e9" * 5000 for i in range(20)}
    raw = JsonFormatter().format(record("m", event="e", fields=fields, exc=ValueError("boom")))
    line = one_object(raw)
    assert len(raw) <= RECORD_LIMIT
    assert line["exception"].endswith("ValueError: boom")
    assert line["field0"].endswith("... [cut: 5000 characters]")
    assert encoded_length(line["field0"]) <= LINE_LIMIT


texts = st.text(max_size=3000) | st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape"))
values = st.none() | st.integers() | st.floats() | st.booleans() | texts


@given(message=texts, exc_text=texts, long=st.integers(0, 20000), fields=st.dictionaries(texts, values, max_size=8))
def test_every_record_is_one_bounded_line_of_one_object(message, exc_text, long, fields):
    made = record("%s", message, level=logging.ERROR, event=message[:50], fields=fields,
                  exc=RuntimeError(exc_text + "\u00e9" * long))
    raw = JsonFormatter().format(made)
    line = one_object(raw)
    assert len(raw) <= RECORD_LIMIT
    assert not any(controls(text) for text in strings(line))
    assert not any("\n" in text for text in strings({**line, "exception": ""}))
    assert line["exception"].endswith(("characters]", escape_controls(exc_text + "\u00e9" * long)))


# -- journal and syslog --------------------------------------------------------------------

@pytest.mark.parametrize("level, priority", [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                                             (logging.ERROR, 3), (logging.CRITICAL, 2)])
def test_the_journal_gets_its_priority_then_the_object_on_one_line(level, priority):
    text = logs._JournalFormatter(JsonFormatter()).format(record("one", level=level, exc=ValueError("two")))
    assert text.startswith(f"<{priority}>{{") and "\n" not in text
    line = one_object(text[len(f"<{priority}>"):])
    assert line["message"] == "one" and line["exception"].endswith("ValueError: two")


def test_syslog_writes_the_object_as_its_message():
    made = record("hello", exc=ValueError("two"))
    modern = logs._SyslogFormatter(legacy=False, body=JsonFormatter()).format(made)
    match = re.fullmatch(rf"1 ({TIME}) \S+ websockify {os.getpid()} - - (\{{.*\}})", modern)
    assert match and one_object(match.group(2))["time"] == match.group(1)
    legacy = logs._SyslogFormatter(legacy=True, body=JsonFormatter()).format(made)
    assert legacy.startswith(f"websockify[{os.getpid()}]: {{")
    assert one_object(legacy.split(": ", 1)[1])["exception"].endswith("ValueError: two")


# -- setup_logging -------------------------------------------------------------------------

def _flush_all() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def test_json_goes_to_stderr_and_to_the_log_file(restored_logging, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    path = tmp_path / "websockify.log"
    setup_logging(LogSettings(log_file=str(path), format="json"))
    logging.getLogger("websockify.test").info("session", extra={"event": "session_end", "fields": SESSION_END})
    try:
        raise RuntimeError("plugin bug " + HOSTILE)
    except RuntimeError:
        logging.getLogger("websockify.test").exception("failed")
    _flush_all()
    for written in (capsys.readouterr().err, path.read_text()):
        lines = written.splitlines()
        assert len(lines) == 2 and written.endswith("\n")
        first, second = (one_object(line) for line in lines)
        assert first["event"] == "session_end" and first["bytes_up"] == 11
        assert second["level"] == "ERROR" and "plugin bug \\x1b[2J" in second["exception"]


def test_the_journal_gets_json_after_its_priority(restored_logging, tmp_path, monkeypatch):
    with open(tmp_path / "stderr", "w") as file:
        monkeypatch.setattr(sys, "stderr", file)
        stat = os.fstat(file.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        setup_logging(LogSettings(format="json"))
        logging.getLogger("websockify.test").warning("refused", extra={"event": "handshake_failed",
                                                                       "fields": {"status": 403}})
        _flush_all()
    text = (tmp_path / "stderr").read_text()
    assert text.startswith("<4>{") and text.count("\n") == 1
    line = one_object(text[3:].rstrip("\n"))
    assert (line["event"], line["status"], line["level"]) == ("handshake_failed", 403, "WARNING")


def test_syslog_gets_json_as_its_message(restored_logging, tmp_path):
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(10)
        setup_logging(LogSettings(syslog=path, format="json"))
        logging.getLogger("websockify.test").info("hello", extra={"event": "e", "fields": {"n": 1}})
        datagram = server.recv(65536).decode("ascii")
    match = re.fullmatch(rf"<14>1 {TIME} \S+ websockify {os.getpid()} - - (\{{.*\}})", datagram)
    assert match, datagram
    assert one_object(match.group(1))["n"] == 1


def test_text_stays_the_default(restored_logging, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging(LogSettings())
    logging.getLogger("websockify.test").info("plain", extra={"event": "e", "fields": {"n": 1}})
    assert re.fullmatch(rf"\S+ \S+ websockify\[{os.getpid()}\] INFO plain\n", capsys.readouterr().err)


def test_a_refused_log_file_reopen_is_told_on_stderr_in_json(restored_logging, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    path = tmp_path / "websockify.log"
    setup_logging(LogSettings(log_file=str(path), format="json"))
    path.rename(tmp_path / "websockify.log.1")
    path.symlink_to(tmp_path / "victim")
    logging.getLogger("websockify.test").warning("planted")
    _flush_all()
    lines = [one_object(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines][0] == "planted"
    assert lines[1]["level"] == "WARNING" and "cannot reopen (it is a symbolic link)" in lines[1]["message"]
    assert not (tmp_path / "victim").exists()
