"""The payload length of a client frame header, judged strictly.

websockets accepts a payload length written in more bytes than needed and
reads a 64-bit length with its top bit set as a huge size (1009). RFC 6455
§5.2 requires the minimal encoding and a clear top bit: both are protocol
errors (1002). The session (websocket.py) judges every header with this as
soon as its length is complete, before websockets sees the frame.
"""
from __future__ import annotations

import struct


def check_header(header: bytes) -> tuple[int, str | None]:
    """(payload length, error) of a frame header, complete up to its payload length."""
    code = header[1] & 0x7F
    if code == 126:
        (length,) = struct.unpack_from("!H", header, 2)
        if length < 126:
            return length, "payload length not in its minimal form"
    elif code == 127:
        (length,) = struct.unpack_from("!Q", header, 2)
        if length >> 63:
            return length, "payload length with the most significant bit set"
        if length <= 0xFFFF:
            return length, "payload length not in its minimal form"
    else:
        length = code
    return length, None
