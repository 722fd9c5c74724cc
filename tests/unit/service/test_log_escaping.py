"""service/logs.py's last pass over every record (issue 17, item 10): each line escaped and
bounded, tracebacks included, whatever text an exception carries."""
from __future__ import annotations

import logging
import re
import traceback
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websockify.config import LogSettings
from websockify.protocol.logsafe import printable
from websockify.service import logs
from websockify.service.log_bounds import LINE_LIMIT, RECORD_LIMIT
from websockify.service.logs import setup_logging

TIMESTAMPED = logs._TIMESTAMPED
# What a client's header brought into an auth plugin's exception in issue 17: CSI, NEL, 15 KB.
HEADER = "\x9b2J\x85INFO forged line\r\n\u2028" + "h" * 15000


def formatters() -> list[logging.Formatter]:
    return [logs._SafeFormatter(TIMESTAMPED), logs._JournalFormatter(), logs._SyslogFormatter(legacy=False),
            logs._SyslogFormatter(legacy=True)]


def failed(message: str, exc: BaseException, *args: object) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as raised:
        return logging.LogRecord("websockify.test", logging.ERROR, __file__, 1, message, args,
                                 (type(raised), raised, raised.__traceback__))


def controls(text: str) -> list[str]:
    """Every character of `text` that is not a plain printable one, but the record's own newlines."""
    return [c for c in text if c != "\n" and (unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")
                                               or c in "\u202e\u2066")]


def test_a_message_is_one_line_with_its_controls_escaped():
    record = logging.LogRecord("websockify.test", logging.INFO, __file__, 1, "a%sb", ("\x1b[31m\r\n\x9b\x85\u2028",),
                               None)
    line = logs._SafeFormatter("%(message)s").format(record)
    assert line == "a\\x1b[31m\\x0d\\x0a\\x9b\\x85\\u2028b"


def test_what_printable_escaped_is_not_escaped_again():
    text = printable("C:\\dir\x1b")  # a backslash and an escape, escaped once
    record = logging.LogRecord("websockify.test", logging.INFO, __file__, 1, "%s", (text,), None)
    assert logs._SafeFormatter("%(message)s").format(record) == "C:\\\\dir\\x1b"


def test_a_traceback_without_controls_is_what_python_prints():
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        expected = "".join(traceback.format_exception(exc)).rstrip("\n")
        record = logging.LogRecord("websockify.test", logging.ERROR, __file__, 1, "failed", None,
                                   (type(exc), exc, exc.__traceback__))
    assert logs._SafeFormatter("%(message)s").format(record) == "failed\n" + expected


def test_an_exception_carrying_a_client_header_is_one_bounded_line():
    """Before: the traceback path wrote U+009B and U+0085 raw in a 15 KB line."""
    for formatter in formatters():
        text = formatter.format(failed("the auth plugin failed: %s", RuntimeError("plugin bug: " + HEADER),
                                       printable("plugin bug: " + HEADER)))
        assert not controls(text), formatter
        assert len(text) <= RECORD_LIMIT + 200
        lines = text.split("\n")
        if not isinstance(formatter, logs._SyslogFormatter):
            assert max(len(line) for line in lines) <= LINE_LIMIT + 3  # 3: a journal prefix
        assert not any(line.lstrip("<0123456789>").startswith("INFO") for line in lines)
    lines = logs._SafeFormatter(TIMESTAMPED).format(failed("failed", RuntimeError("plugin bug: " + HEADER))).split("\n")
    assert lines[-1].startswith("RuntimeError: plugin bug: \\x9b2J\\x85INFO forged line\\x0d\\x0a\\u2028hhh")
    assert lines[-1].endswith(f"... [cut: {len('RuntimeError: plugin bug: ' + HEADER)} characters]")
    assert len(lines[-1]) <= LINE_LIMIT


def test_a_long_message_line_is_cut_with_a_note():
    record = logging.LogRecord("websockify.test", logging.INFO, __file__, 1, "x" * 20000, None, None)
    line = logs._SafeFormatter(TIMESTAMPED).format(record)
    assert len(line) == LINE_LIMIT or (len(line) < LINE_LIMIT and line.endswith("characters]"))
    assert re.search(r"\.\.\. \[cut: 200\d\d characters\]$", line)


def test_a_cut_never_ends_on_half_an_escape():
    record = logging.LogRecord("websockify.test", logging.INFO, __file__, 1, "\x9b" * 5000, None, None)
    line = logs._SafeFormatter("%(message)s").format(record)
    shown = line[:line.index("... [cut")]
    assert re.fullmatch(r"(\\x9b)+", shown) and len(line) <= LINE_LIMIT


def test_a_deep_traceback_keeps_its_first_line_and_its_innermost_frames(deep_traceback_record):
    record = deep_traceback_record("at the bottom " + "\x85" * 3000)
    text = logs._SafeFormatter(TIMESTAMPED).format(record)
    lines = text.split("\n")
    assert len(text) <= RECORD_LIMIT and not controls(text)
    assert lines[0].endswith(" ERROR deep")
    assert re.fullmatch(r"\.\.\. \[cut: \d+ lines of the traceback\]", lines[1])
    assert lines[-1].startswith("RuntimeError: at the bottom \\x85\\x85")


def test_an_exception_whose_str_fails_is_still_logged():
    class Broken(Exception):
        def __str__(self) -> str:
            raise ValueError("no text")

    text = logs._SafeFormatter("%(message)s").format(failed("broken", Broken()))
    assert text.split("\n")[-1].endswith("Broken: <exception str() failed>")


def test_a_chain_that_loops_ends():
    first, second = ValueError("one"), KeyError("two")
    first.__context__, second.__context__ = second, first
    text = logs._SafeFormatter("%(message)s").format(failed("loop", first))
    assert text.count("During handling") == 1


def test_a_traceback_formatted_elsewhere_is_escaped_too():
    record = logging.LogRecord("websockify.test", logging.ERROR, __file__, 1, "m", None, None)
    record.exc_text = "Traceback:\nError: \x9bbad"
    record.stack_info = "Stack:\n  \x1b[2J"
    assert logs._SafeFormatter("%(message)s").format(record) == "m\nTraceback:\nError: \\x9bbad\nStack:\n  \\x1b[2J"


texts = st.text(max_size=3000) | st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape"))


@given(message=texts, exc_text=texts, long=st.integers(0, 20000))
def test_no_record_holds_a_control_or_an_unbounded_line(message, exc_text, long):
    exc_text += "\x85" * long
    for formatter in formatters():
        text = formatter.format(failed("%s", RuntimeError(exc_text), message))
        lines = text.split("\n")
        assert not controls(text)
        if isinstance(formatter, logs._SyslogFormatter):  # one line: its traceback joined by " | "
            assert len(lines) == 1 and len(text) <= RECORD_LIMIT + 80  # 80: the syslog header
        else:
            assert all(len(line) <= LINE_LIMIT + 3 for line in lines)  # 3: a journal prefix
            assert len(text) <= RECORD_LIMIT + 3 * len(lines)
    assert len(formatters()[0].format(failed("%s", RuntimeError(exc_text), message))) <= RECORD_LIMIT


@pytest.mark.parametrize("settings", ["stderr", "file"])
def test_every_handler_of_setup_logging_escapes(restored_logging, tmp_path, monkeypatch, capsys, settings):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    path = tmp_path / "websockify.log"
    setup_logging(LogSettings(log_file=str(path)) if settings == "file" else LogSettings())
    try:
        raise RuntimeError("plugin bug: " + HEADER)
    except RuntimeError:
        logging.getLogger("websockify.test").exception("the auth plugin failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = path.read_text() if settings == "file" else capsys.readouterr().err
    assert "RuntimeError: plugin bug: \\x9b2J" in written
    assert not controls(written) and max(len(line) for line in written.splitlines()) <= LINE_LIMIT
