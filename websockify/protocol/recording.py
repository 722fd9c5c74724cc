"""The session recording format, upstream websockify's (noVNC's playback reads it).

A recording is a JavaScript array of strings, one per relayed message, after a
comment naming the session (a line noVNC's player, which runs the file, skips):

    // websockify session: client 192.0.2.7:50123 via 127.0.0.1:41000, target 127.0.0.1:5901
    var VNC_frame_data = [
    '}120}<client-to-target bytes>',
    '{135{<target-to-client bytes>',
    'EOF'];

The number is milliseconds since the WebSocket opened; `}` marks bytes the client
sent to the target and `{` bytes the target sent to the client. Bytes are
written as Latin-1 text escaped with Python's unicode_escape, plus `\\'` for the
quote, so every byte value survives. A recording cut short (websockify killed)
lacks the final 'EOF'.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .logsafe import printable

HEADER = "var VNC_frame_data = [\n"
FOOTER = "'EOF'];\n"
CLIENT_TO_TARGET = "}"
TARGET_TO_CLIENT = "{"


@dataclass(frozen=True)
class RecordedFrame:
    direction: str  # CLIENT_TO_TARGET or TARGET_TO_CLIENT
    offset_ms: int
    data: bytes


def about_line(client: str, proxy: str | None, target: str) -> str:
    """The first line: who the session was with (the real client, and the proxy that named it)."""
    text = printable(f"client {client}{f' via {proxy}' if proxy else ''}, target {target}")
    # Escaped: no line ends inside the comment, and ASCII as the whole file is (a Unix path may not be).
    return "// websockify session: " + text.encode("ascii", "backslashreplace").decode("ascii") + "\n"


def encode_frame(direction: str, offset_ms: int, data: bytes) -> str:
    escaped = data.decode("latin-1").encode("unicode_escape").decode("ascii").replace("'", "\\'")
    return f"'{direction}{offset_ms}{direction}{escaped}',\n"


def parse_recording(text: str) -> Iterator[RecordedFrame]:
    """The frames of a recording, in order; stops at 'EOF' or the end of the text."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line == HEADER.strip() or line.startswith("//"):
            continue
        if line.startswith("'EOF'"):
            return
        if not (line.startswith("'") and line.endswith("',") and len(line) >= 5):
            raise ValueError(f"line {number}: not a recorded frame")
        body = line[1:-2]
        direction = body[0]
        if direction not in (CLIENT_TO_TARGET, TARGET_TO_CLIENT):
            raise ValueError(f"line {number}: unknown direction {direction!r}")
        end = body.find(direction, 1)
        if end < 0 or not body[1:end].isdigit():
            raise ValueError(f"line {number}: missing timestamp")
        data = body[end + 1:].encode("ascii").decode("unicode_escape").encode("latin-1")
        yield RecordedFrame(direction, int(body[1:end]), data)
