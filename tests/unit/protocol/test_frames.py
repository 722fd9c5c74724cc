import struct

import pytest

from websockify.protocol.frames import check_header


def length_part(code: int, extended: bytes = b"") -> bytes:
    return bytes([0x82, 0x80 | code]) + extended


@pytest.mark.parametrize("header,length,error", [
    (length_part(5), 5, None),
    (length_part(126, struct.pack("!H", 126)), 126, None),
    (length_part(126, struct.pack("!H", 125)), 125, "payload length not in its minimal form"),
    (length_part(127, struct.pack("!Q", 65536)), 65536, None),
    (length_part(127, struct.pack("!Q", 65535)), 65535, "payload length not in its minimal form"),
    (length_part(127, struct.pack("!Q", 1 << 63)), 1 << 63, "payload length with the most significant bit set"),
])
def test_check_header(header, length, error):
    assert check_header(header) == (length, error)
