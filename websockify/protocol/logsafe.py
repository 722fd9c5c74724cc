"""Text a client controls, made safe for a log line.

A request path or header may carry terminal escape sequences or a carriage
return that forges a second log line. Every such character is written as a
visible escape instead, and very long values are cut.

Two functions, one table: `printable()` for a value put into a message (it
escapes the backslash too, so its escapes are unambiguous), and
`escape_controls()` for the log formatter's last pass over whole records,
tracebacks included: that one leaves the backslash alone, so a value
printable() already escaped is not escaped a second time (`\\x1b` would
become `\\\\x1b`).
"""
from __future__ import annotations

import re

# C0 controls, DEL and C1 controls (NEL, U+0085, and CSI, U+009B, among them).
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
# Line and paragraph separators (line breaks to some log viewers and to
# str.splitlines), the bidirectional overrides and isolates that reorder what
# a terminal shows, and lone surrogates (a strict UTF-8 log file refuses them).
_ESCAPES.update({code: f"\\u{code:04x}" for code in (0x2028, 0x2029, *range(0x202A, 0x202F),
                                                      *range(0x2066, 0x206A), 0x200E, 0x200F)})
_CONTROLS_PATTERN = re.compile("[" + "".join(f"\\u{code:04x}" for code in sorted(_ESCAPES))
                               + "\\ud800-\\udfff]")
_ESCAPES[ord("\\")] = "\\\\"
_WITH_BACKSLASH = re.compile(_CONTROLS_PATTERN.pattern[:-1] + "\\\\]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return _ESCAPES.get(code) or f"\\u{code:04x}"  # a lone surrogate


def printable(text: object, limit: int = 200) -> str:
    """`text` with every control character and the backslash escaped, at most about `limit`
    characters of it (each escaped character takes up to 6)."""
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    return _WITH_BACKSLASH.sub(_escape, value)


def escape_controls(text: str) -> str:
    """`text` with what printable() escapes escaped, except the backslash: for the log
    formatter, whose input is partly printable()'s output already."""
    return _CONTROLS_PATTERN.sub(_escape, text)
