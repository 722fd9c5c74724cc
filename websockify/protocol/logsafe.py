"""Text a client controls, made safe for a log line.

A request path or header may carry terminal escape sequences or a carriage
return that forges a second log line. Every such character is written as a
visible escape instead, and very long values are cut.
"""
from __future__ import annotations

# C0 controls, DEL and C1 controls, plus the backslash so an escape is unambiguous.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES[ord("\\")] = "\\\\"
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})  # line separators to some log viewers


def printable(text: object, limit: int = 200) -> str:
    """`text` with every control character escaped, at most about `limit` characters."""
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    return value.translate(_ESCAPES)
