"""`--log-format json`: each record one JSON object on one line (docs/logging.md).

Keys, in order: time (RFC 3339, UTC, milliseconds), level, logger, pid, message,
then `event` and the keys of `fields` when the record carries them
(`log.info(..., extra={"event": "session_end", "fields": {...}})`; a field named
like a key above is skipped, never overwriting it), then `exception` (the
traceback the text format writes) and `stack` when there are any.

The text format's guarantees hold. Every string is escaped as the text format
escapes it (escape_controls) before json.dumps, so `jq -r .message` shows `\\x1b`
on a terminal rather than running an escape sequence, and no lone surrogate
reaches a JSON decoder; json.dumps with ensure_ascii then writes whatever is not
printable ASCII as a `\\u` escape, so a record is one line of ASCII. The bounds
count the characters written, escapes included: the message and each string
field at most LINE_LIMIT, the whole object at most RECORD_LIMIT, the traceback
cut to its innermost lines when it does not fit, with the same notes as the
text format.
"""
from __future__ import annotations

import json
import logging
import math
from json.encoder import encode_basestring_ascii
from typing import Any

from ..protocol.logsafe import escape_controls
from .log_bounds import LINE_LIMIT, RECORD_LIMIT, bounded_line, exception_lines, utc_timestamp

RESERVED = frozenset({"time", "level", "logger", "pid", "message", "event", "exception", "stack"})
NAME_LIMIT = 200  # characters of a logger's or an event's name, or a field's key, written
_TRACEBACK_RESERVE = 2048  # what fields leave to a traceback that follows them
# json.dumps's own: a space after each comma and colon keeps a line readable, and a pattern
# such as `listening on (\S+):(\d+)` stops at the end of the value it looks for.
_SEPARATORS = (", ", ": ")
_PAIR = len(_SEPARATORS[0]) + len(_SEPARATORS[1])  # what a key and its value take besides themselves


def encoded_length(text: str) -> int:
    """Characters `text` takes in a line, its quotes included."""
    return len(encode_basestring_ascii(text))


def bounded(raw: str, limit: int) -> str:
    """`raw` escaped, and cut so that it takes at most `limit` characters in a line, saying so."""
    shown = escape_controls(raw[:limit])  # each character takes at least one: no more is ever shown
    if len(raw) <= limit and encoded_length(shown) <= limit:
        return shown
    return _cut(shown, f"... [cut: {len(raw)} characters]", limit)


def _cut(shown: str, note: str, limit: int) -> str:
    """The longest start of `shown` that, with `note` after it, takes at most `limit` characters."""
    low, high = 0, len(shown)
    while low < high:  # the written length only grows with the start's length: bisect it
        middle = (low + high + 1) // 2
        if encoded_length(shown[:middle] + note) <= limit:
            low = middle
        else:
            high = middle - 1
    backslash = shown.rfind("\\", max(low - 5, 0), low)  # never end on half an escape (\x9 of \x9b)
    return shown[:backslash if backslash >= 0 else low] + note


def _fit_lines(lines: list[str], limit: int) -> str:
    """Lines (each bounded_line() already) joined, taking at most `limit` characters in a line:
    past that, a note and the last lines (a traceback's innermost frames and its exception)."""
    text = "\n".join(lines)
    if encoded_length(text) <= limit:
        return text
    room = limit - 2 - 64  # 2: the quotes; 64: the note and its newline
    rest = lines[:]
    tail: list[str] = []
    while rest and encoded_length(rest[-1]) <= room:  # a line's quotes' 2 characters: its newline's
        room -= encoded_length(rest[-1])
        tail.insert(0, rest.pop())
    if not tail:  # not even the last line fits whole: its start does
        last = rest.pop()
        tail = [_cut(last, f"... [cut: {len(last)} characters]", room)]
    return "\n".join([f"... [cut: {len(rest)} lines of the traceback]", *tail])


def _value(value: object, limit: int) -> "str | int | float | None":
    if isinstance(value, int):  # bool among them
        return value if abs(value) < 2**63 else None  # beyond what JSON readers hold exactly
    if value is None or isinstance(value, float):
        return value if value is None or math.isfinite(value) else None  # NaN and Infinity are not JSON
    return bounded(value if isinstance(value, str) else _text(value), limit)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a value's own __str__ may fail: the record must not
        return "<str() failed>"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_timestamp(record),
            "level": record.levelname,
            "logger": bounded(record.name, NAME_LIMIT),
            "pid": record.process,
            "message": bounded(record.getMessage(), LINE_LIMIT),
        }
        event = getattr(record, "event", None)
        if event is not None:
            line["event"] = bounded(_text(event), NAME_LIMIT)
        traceback = self._traceback(record)
        stack = [bounded_line(text) for text in record.stack_info.splitlines()] if record.stack_info else []
        used = len(self._dumps(line))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            used = self._add_fields(line, fields, used, RECORD_LIMIT - (_TRACEBACK_RESERVE if traceback or stack
                                                                         else 0))
        for key, lines in (("exception", traceback), ("stack", stack)):
            room = RECORD_LIMIT - used - encoded_length(key) - _PAIR
            if lines and room > 256:  # room for a note and the start of a line at least
                line[key] = _fit_lines(lines, room)
                used += encoded_length(key) + _PAIR + encoded_length(line[key])
        return self._dumps(line)

    @staticmethod
    def _traceback(record: logging.LogRecord) -> list[str]:
        if record.exc_info and record.exc_info[1] is not None:
            return exception_lines(record.exc_info[1])
        if record.exc_text:  # formatted elsewhere: escaped here all the same
            return [bounded_line(text) for text in record.exc_text.splitlines()]
        return []

    @staticmethod
    def _add_fields(line: dict[str, Any], fields: dict[Any, object], used: int, limit: int) -> int:
        """Each field that is not a key of its own and fits before `limit`; the length used then."""
        for raw_key, raw_value in fields.items():
            key = bounded(_text(raw_key), NAME_LIMIT)
            if key in RESERVED or key in line:
                continue
            room = limit - used - encoded_length(key) - _PAIR
            if room < 32:  # not even a short cut value fits: the field is left out
                continue
            value = _value(raw_value, min(LINE_LIMIT, room))
            line[key] = value
            used += encoded_length(key) + _PAIR + len(JsonFormatter._dumps(value))
        return used

    @staticmethod
    def _dumps(value: object) -> str:
        return json.dumps(value, ensure_ascii=True, separators=_SEPARATORS)
