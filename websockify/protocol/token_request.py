"""Where a client's token is, and how it may appear in a log.

Upstream's rules: `?token=` in the request target (the first value, a trailing
newline stripped), or with --host-token the `Host` header without its port.
Unlike upstream's `partition(':')`, a bracketed IPv6 literal keeps its colons.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from .logsafe import printable

_TOKEN_IN_QUERY = re.compile(r"(?i)(token(?:=|%3D))([^&#\s%]*(?:%(?!26|23)[0-9A-F]{2}[^&#\s%]*)*)")
_SHOWN = 4  # characters of a token a log line may show


def token_from_target(target: str) -> str | None:
    values = parse_qs(urlsplit(target).query).get("token")
    if not values:
        return None
    token = values[0].rstrip("\n")
    return token or None


def token_from_host(host: str | None) -> str | None:
    """`Host: vnc1.example.com:6080` → `vnc1.example.com`; `[::1]:6080` → `::1`."""
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 1 else None
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name or None


def redact(token: str) -> str:
    """A token as a log line may show it: enough to tell two apart, not enough to use one.
    Not escaped yet (it was percent-decoded: it may hold anything): pass it to printable()."""
    return token[:_SHOWN] + "…" if len(token) > _SHOWN else "…"


def redact_target(target: str) -> str:
    """A request target with any `token=` value shortened (noVNC passes it in `path=`)."""
    return _TOKEN_IN_QUERY.sub(lambda m: m.group(1) + redact(m.group(2)) if m.group(2) else m.group(0), target)


def printable_target(target: str) -> str:
    """A request target for a log line: escaped, and any token in it shortened."""
    return printable(redact_target(target))
