"""What one log record may hold, in the text format and in JSON (log_json.py): lines
escaped and at most LINE_LIMIT characters, a record at most RECORD_LIMIT, and a
traceback as Python prints one, each exception's text on one line."""
from __future__ import annotations

import logging
import time
import traceback
from types import TracebackType

from ..protocol.logsafe import escape_controls

LINE_LIMIT = 2048  # characters of one line, escapes counted
RECORD_LIMIT = 8192  # characters of one record, its traceback included
_CHAIN_LIMIT = 16  # exceptions of a __cause__/__context__ chain shown
_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"


def bounded_line(text: str) -> str:
    """One line of a record: escaped, and cut to LINE_LIMIT characters."""
    return cut_line(escape_controls(text[:LINE_LIMIT]), len(text))


def cut_line(shown: str, length: int) -> str:
    """`shown` (escaped text once `length` characters long) cut to LINE_LIMIT, saying so."""
    if length <= LINE_LIMIT and len(shown) <= LINE_LIMIT:
        return shown
    note = f"... [cut: {length} characters]"
    end = LINE_LIMIT - len(note)
    backslash = shown.rfind("\\", end - 5, end)  # never end on half an escape (\x9 of \x9b)
    return shown[:backslash if backslash >= 0 else end] + note


def bounded_record(lines: list[str]) -> str:
    """A record's lines (each bounded_line() already), at most RECORD_LIMIT characters in all."""
    if sum(len(line) + 1 for line in lines) <= RECORD_LIMIT:
        return "\n".join(lines)
    first, rest = lines[0], lines[1:]
    room = RECORD_LIMIT - len(first) - 64  # 64: the note
    tail: list[str] = []
    while rest and len(rest[-1]) + 1 <= room:
        room -= len(rest[-1]) + 1
        tail.insert(0, rest.pop())
    return "\n".join([first, f"... [cut: {len(rest)} lines of the traceback]", *tail])


def _exception_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception's own __str__ may fail: the record must not
        return "<exception str() failed>"


def exception_lines(exc: BaseException) -> list[str]:
    """A traceback as Python prints one, chained exceptions first, with each exception's
    text on one line (its newlines escaped, so no text forges a line) and each line bounded."""
    chain: list[tuple[BaseException, str]] = []  # each exception, and what joins it to the next
    seen: set[int] = set()
    current: BaseException | None = exc
    joint = ""
    while current is not None and id(current) not in seen and len(chain) < _CHAIN_LIMIT:
        seen.add(id(current))
        chain.append((current, joint))
        if current.__cause__ is not None:
            current, joint = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joint = current.__context__, _CONTEXT
        else:
            current = None
    lines: list[str] = []
    for item, joint in reversed(chain):
        lines.extend(_one_exception(item, item.__traceback__))
        if joint:
            lines.extend(["", joint, ""])
    return [bounded_line(line) for line in lines]


def _one_exception(exc: BaseException, tb: TracebackType | None) -> list[str]:
    lines: list[str] = []
    if tb is not None:
        lines.append("Traceback (most recent call last):")
        for chunk in traceback.format_tb(tb):
            lines.extend(chunk.rstrip("\n").split("\n"))
    kind = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("__main__", "builtins"):
        kind = f"{module}.{kind}"
    # The text may carry a client's 15 KB header: it is one line, cut by bounded_line().
    text = _exception_text(exc)
    lines.append(f"{kind}: {text}" if text else kind)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        lines.extend(str(note) for note in notes[:8])
    return lines


def utc_timestamp(record: logging.LogRecord) -> str:
    """RFC 3339, UTC, milliseconds: 2026-12-08T01:02:03.456Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
