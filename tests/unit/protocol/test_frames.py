import struct

import pytest

from websockify.protocol.frames import HeaderScanner, check_header


def masked(length_bytes: bytes) -> bytes:
    return bytes([0x82]) + length_bytes + b"MASK"


@pytest.mark.parametrize("header,length,error", [
    (masked(bytes([0x80 | 5])), 5, None),
    (masked(bytes([0x80 | 126]) + struct.pack("!H", 126)), 126, None),
    (masked(bytes([0x80 | 126]) + struct.pack("!H", 125)), 125, "payload length not in its minimal form"),
    (masked(bytes([0x80 | 127]) + struct.pack("!Q", 65536)), 65536, None),
    (masked(bytes([0x80 | 127]) + struct.pack("!Q", 65535)), 65535, "payload length not in its minimal form"),
    (masked(bytes([0x80 | 127]) + struct.pack("!Q", 1 << 63)), 1 << 63,
     "payload length with the most significant bit set"),
])
def test_check_header(header, length, error):
    assert check_header(header) == (length, error)


def test_scanner_follows_frames_split_anywhere():
    stream = (masked(bytes([0x80 | 3])) + b"abc") + (masked(bytes([0x80 | 126]) + struct.pack("!H", 300))
                                                     + b"p" * 300) + masked(bytes([0x80 | 0]))
    for cut in range(1, len(stream)):
        scanner = HeaderScanner()
        assert scanner.feed(stream[:cut]) is None and scanner.feed(stream[cut:]) is None
    bad = stream + masked(bytes([0x80 | 126]) + struct.pack("!H", 1)) + b"x"
    for size in (1, 2, 7, len(bad)):
        scanner = HeaderScanner()
        errors = {scanner.feed(bad[i:i + size]) for i in range(0, len(bad), size)}
        assert "payload length not in its minimal form" in errors
