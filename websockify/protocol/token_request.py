"""Where a client's token is, and how a request target may appear in a log.

Upstream's rules: `?token=` in the request target (the first value, a trailing
newline stripped), or with --host-token the `Host` header without its port.
Unlike upstream's `partition(':')`, a bracketed IPv6 literal keeps its colons.

A target in a log line shows at most the first four characters of a token and
nothing of a password (noVNC's `vnc.html?password=...`), however they are
written: a key in any letter case and any percent-encoding (`pass%77ord=`),
inside a parameter's value (noVNC's `path=websockify%3Ftoken%3D...`, encoded
once or more), a value holding `%26` or invalid escapes (`%ZZ`). A regular
expression over the raw text cannot follow all of that, so the target is read
the way its consumers read it: split into parameters, and decoded level by
level, each level searched again. Each character of a level knows which raw
characters it came from, so what is hidden is cut out of the raw target and
the rest is shown as the client sent it.
"""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from .logsafe import printable

_SHOWN = 4  # characters of a token a log line may show
_TOKEN_KEYS = frozenset({"token"})
_PASSWORD_KEYS = frozenset({"password", "passwd", "pass", "pwd", "pw"})
# Where a parameter may start, in any reader's view: parse_qs splits on `&`
# alone, others on `;` too, noVNC's readQueryVariable on `?` and `&` anywhere
# in the URL, `#` starts the fragment (noVNC reads `#password=` too).
_STARTS = frozenset("?&;#")
# Where a secret value ends, in the widest reader's view (parse_qs keeps `;`
# and `?` in a value, noVNC's hash variables keep `#`): only at `&`.
_VALUE_END = "&"
_DEPTH = 8  # levels of percent-encoding looked through (noVNC's path= is one)
_LIMIT = 200  # characters of a target a log line shows
_HEX = frozenset("0123456789abcdefABCDEF")


class _Level:
    """A target at one level of percent-decoding: each character, and the span of
    raw characters it was decoded from."""

    def __init__(self, chars: list[str], starts: list[int], ends: list[int]):
        self.chars, self.starts, self.ends = chars, starts, ends

    @classmethod
    def raw(cls, text: str) -> _Level:
        return cls(list(text), list(range(len(text))), list(range(1, len(text) + 1)))

    def slice(self, start: int, end: int) -> _Level:
        return _Level(self.chars[start:end], self.starts[start:end], self.ends[start:end])

    def decoded(self) -> _Level | None:
        """One more level of percent-decoding (UTF-8, an invalid byte as U+FFFD, an
        invalid escape kept as it is, as unquote() does), or None when nothing changes."""
        chars, starts, ends = self.chars, self.starts, self.ends
        out = _Level([], [], [])
        i, n = 0, len(chars)
        while i < n:
            if not _is_escape(chars, i):
                out.chars.append(chars[i])
                out.starts.append(starts[i])
                out.ends.append(ends[i])
                i += 1
                continue
            run: list[tuple[int, int, int]] = []  # byte, raw start, raw end
            while _is_escape(chars, i):
                run.append((int(chars[i + 1] + chars[i + 2], 16), starts[i], ends[i + 2]))
                i += 3
            k = 0
            while k < len(run):
                width = _utf8_width(run[k][0])
                try:
                    char = bytes(b for b, _, _ in run[k:k + width]).decode("utf-8") if width else ""
                except UnicodeDecodeError:
                    char = ""
                if len(char) != 1 or len(run[k:k + width]) != width:
                    char, width = "\ufffd", 1
                out.chars.append(char)
                out.starts.append(run[k][1])
                out.ends.append(run[k + width - 1][2])
                k += width
        return out if len(out.chars) != n else None


def _is_escape(chars: list[str], i: int) -> bool:
    return i + 2 < len(chars) and chars[i] == "%" and chars[i + 1] in _HEX and chars[i + 2] in _HEX


def _utf8_width(lead: int) -> int:
    """How many bytes a UTF-8 sequence starting with `lead` has; 0 for a byte that starts none."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    return 4 if 0xF0 <= lead <= 0xF4 else 0


def _key_name(key: str) -> str:
    """A parameter's name as any reader could take it: decoded until it stops changing."""
    for _ in range(_DEPTH):
        decoded = unquote(key)
        if decoded == key:
            break
        key = decoded
    return key.strip().casefold()


def _hide_secrets(level: _Level, hidden: bytearray) -> None:
    """Mark in `hidden` the raw characters of every secret value that `level` shows."""
    chars, n = level.chars, len(level.chars)
    start = 0
    while start < n:
        end = start
        while end < n and chars[end] not in _STARTS:
            end += 1
        try:
            equals = chars.index("=", start, end)
        except ValueError:
            equals = -1
        if equals >= 0:
            name = _key_name("".join(chars[start:equals]))
            if name in _TOKEN_KEYS or name in _PASSWORD_KEYS:
                value_end = equals + 1
                while value_end < n and chars[value_end] != _VALUE_END:
                    value_end += 1
                if value_end > equals + 1:
                    value = level.slice(equals + 1, value_end)
                    shown_end = value.starts[0]
                    if name in _TOKEN_KEYS:
                        # The token is the value decoded once more: show its first characters.
                        token = value.decoded() or value
                        if len(token.chars) > _SHOWN:
                            shown_end = token.ends[_SHOWN - 1]
                    hidden[shown_end:value.ends[-1]] = b"\x01" * (value.ends[-1] - shown_end)
        start = end + 1


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
    """A request target with every token value cut to its first characters and every
    password value removed, each cut written `…`; not escaped yet."""
    if "=" not in target and "%" not in target:
        return target  # nothing can be a value (the common static file)
    hidden = bytearray(len(target))
    level: _Level | None = _Level.raw(target)
    for _ in range(_DEPTH):
        if level is None:
            break
        _hide_secrets(level, hidden)
        level = level.decoded()
    out: list[str] = []
    for i, char in enumerate(target):
        if not hidden[i]:
            out.append(char)
        elif i == 0 or not hidden[i - 1]:
            out.append("…")
    return "".join(out)


def printable_target(target: str) -> str:
    """A request target for a log line: escaped, cut, and no token or password in it."""
    if len(target) <= _LIMIT:
        return printable(redact_target(target), _LIMIT)
    # Only what is shown needs reading: a key and its value's first characters come
    # before the cut, and a 16 KiB target costs no more than a short one.
    return printable(redact_target(target[:_LIMIT]) + "...", _LIMIT + 3)
