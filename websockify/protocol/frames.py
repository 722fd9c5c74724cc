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

def _length_end(second_byte: int) -> int:
    """Bytes of a header up to the end of its payload length."""
    code = second_byte & 0x7F
    return 2 + (2 if code == 126 else 8 if code == 127 else 0)


def _header_size(second_byte: int) -> int:
    return _length_end(second_byte) + (4 if second_byte & 0x80 else 0)


def check_header(header: bytes) -> tuple[int, Optional[str]]:
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


class HeaderScanner:
    """Feed the client's bytes in order; the first bad header is reported once."""

    def __init__(self) -> None:
        self._skip = 0  # payload bytes of the current frame not yet seen
        self._length = 0  # payload length of the header being read, once known
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
            # Check the length as soon as it is complete, before the mask key:
            # websockets judges its size then, and the first verdict must be ours.
            if len(header) < 2:
                goal = 2
            else:
                goal = _length_end(header[1])
                if len(header) >= goal:
                    goal = _header_size(header[1])
            take = min(goal - len(header), end - position)
            header += data[position:position + take]
            position += take
            if len(header) < 2:
                continue
            if len(header) == _length_end(header[1]):
                self._length, error = check_header(bytes(header))
                if error is not None:
                    self.error, self.error_offset = error, position - len(header)
                    return error
            if len(header) == _header_size(header[1]):
                self._skip = self._length
                header.clear()
        return None
