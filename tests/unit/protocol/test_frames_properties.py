"""Properties of the frame header scanner against a reference parser of the whole stream."""
import struct

from websockify.protocol.frames import HeaderScanner

MINIMAL = "payload length not in its minimal form"
TOP_BIT = "payload length with the most significant bit set"


def test_a_bad_length_is_found_before_the_mask_key():
    assert HeaderScanner().feed(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63)) == TOP_BIT
    assert HeaderScanner().feed(bytes([0x82, 0xFE]) + struct.pack("!H", 5)) == MINIMAL
