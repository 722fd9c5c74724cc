"""Frame headers of the client's stream, checked before websockets parses them.

websockets accepts a payload length written in more bytes than needed and
reads a 64-bit length with its top bit set as a huge size (1009). RFC 6455
§5.2 requires the minimal encoding and a clear top bit: both are protocol
errors (1002). This scanner walks the stream frame by frame, reading only
headers and skipping payloads, so it costs one small step per frame.
"""
from __future__ import annotations

import struct
from typing import Optional

def _header_size(second_byte: int) -> int:
    code = second_byte & 0x7F
    extra = 2 if code == 126 else 8 if code == 127 else 0
    return 2 + extra + (4 if second_byte & 0x80 else 0)


def check_header(header: bytes) -> tuple[int, Optional[str]]:
    """(payload length, error) of a complete frame header."""
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


class HeaderScanner:
    """Feed the client's bytes in order; the first bad header is reported once."""

    def __init__(self) -> None:
        self._skip = 0  # payload bytes of the current frame not yet seen
        self._header = bytearray()
        self.error: Optional[str] = None
        self.error_offset = 0  # where the bad frame starts in the data that showed it (<= 0: before)

    def feed(self, data: "bytes | bytearray | memoryview") -> Optional[str]:
        """The error of the first bad frame header in `data`, if any."""
        if self.error is not None:
            return self.error
        position, end = 0, len(data)
        while position < end:
            if self._skip:
                step = min(self._skip, end - position)
                self._skip -= step
                position += step
                continue
            header = self._header
            if len(header) < 2:
                need = 2 - len(header)
            else:
                need = _header_size(header[1]) - len(header)
            take = min(need, end - position)
            header += data[position:position + take]
            position += take
            if len(header) >= 2 and len(header) == _header_size(header[1]):
                length, error = check_header(bytes(header))
                if error is not None:
                    self.error, self.error_offset = error, position - len(header)
                    return error
                self._skip = length
                header.clear()
        return None
