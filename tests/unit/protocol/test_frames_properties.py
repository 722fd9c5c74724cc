"""Properties of the frame header scanner against a reference parser of the whole stream."""
import struct

from hypothesis import given
from hypothesis import strategies as st

from websockify.protocol.frames import HeaderScanner

MINIMAL = "payload length not in its minimal form"
TOP_BIT = "payload length with the most significant bit set"


def reference(stream):
    """(error, where the bad frame starts, where its length ends) of the first bad header, or None."""
    at = 0
    while at + 2 <= len(stream):
        second = stream[at + 1]
        code = second & 0x7F
        length_end = at + 2 + (2 if code == 126 else 8 if code == 127 else 0)
        if length_end > len(stream):
            return None
        length = int.from_bytes(stream[at + 2:length_end], "big") if code >= 126 else code
        if code == 126 and length < 126 or code == 127 and length <= 0xFFFF:
            return MINIMAL, at, length_end
        if code == 127 and length >> 63:
            return TOP_BIT, at, length_end
        at = length_end + (4 if second & 0x80 else 0) + length
    return None


@st.composite
def frame_bytes(draw):
    """One frame, its length written in any form, minimal or not; its payload as long as it says, or cut."""
    form = draw(st.sampled_from([7, 16, 64]))
    length = draw({7: st.integers(0, 125), 16: st.integers(0, 0xFFFF) | st.integers(0, 200),
                   64: st.integers(0, (1 << 64) - 1) | st.integers(0, 0x10000) | st.integers(0, 300)}[form])
    masked = draw(st.booleans())
    head = bytes([draw(st.integers(0, 255))])
    if form == 7:
        head += bytes([masked << 7 | length])
    elif form == 16:
        head += bytes([masked << 7 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([masked << 7 | 127]) + struct.pack("!Q", length)
    head += draw(st.binary(min_size=4, max_size=4)) if masked else b""
    return head + b"x" * min(length, 300)


streams = st.one_of(
    st.binary(max_size=100),
    st.lists(frame_bytes() | st.binary(max_size=3), max_size=8).map(b"".join),
)


@st.composite
def chunkings(draw, data):
    if draw(st.integers(0, 4)) == 0:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted({c for c in draw(st.lists(st.integers(1, max(len(data) - 1, 1)), max_size=10)) if c < len(data)})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])] if data else []


@given(streams, st.data())
def test_the_scanner_finds_the_first_bad_header_where_its_length_ends_for_any_chunks(stream, draw):
    expected = reference(stream)
    scanner = HeaderScanner()
    start = 0
    for chunk in draw.draw(chunkings(stream)):
        error = scanner.feed(chunk)
        end = start + len(chunk)
        if expected is None or end < expected[2]:
            assert error is None, (start, end, expected)
        else:
            # Reported with the chunk that completes the bad length, never later.
            assert error == expected[0] and start < expected[2]
            assert scanner.error_offset == expected[1] - start
            assert scanner.feed(b"\x82\x00") == error  # once bad, always bad
            return
        start = end
    assert expected is None or expected[2] > len(stream)


@given(st.integers(0, 125), st.booleans(), st.binary(max_size=8))
def test_a_16_bit_length_below_126_is_not_minimal(length, masked, tail):
    header = bytes([0x82, masked << 7 | 126]) + struct.pack("!H", length)
    assert HeaderScanner().feed(header + tail) == MINIMAL


@given(st.integers(0, 0xFFFF), st.booleans(), st.binary(max_size=8))
def test_a_64_bit_length_below_65536_is_not_minimal(length, masked, tail):
    header = bytes([0x82, masked << 7 | 127]) + struct.pack("!Q", length)
    assert HeaderScanner().feed(header + tail) == MINIMAL


@given(st.integers(1 << 63, (1 << 64) - 1), st.booleans())
def test_a_64_bit_length_with_its_top_bit_set_is_refused(length, masked):
    header = bytes([0x82, masked << 7 | 127]) + struct.pack("!Q", length)
    assert HeaderScanner().feed(header) == TOP_BIT


@given(st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=10))
def test_minimal_frames_are_never_flagged(frames):
    stream = b""
    for length, masked in frames:
        if length < 126:
            head = bytes([0x82, masked << 7 | length])
        else:
            head = bytes([0x82, masked << 7 | 126]) + struct.pack("!H", length)
        stream += head + b"\0\0\0\0" * masked + b"\x82" * length  # payload bytes that look like headers
    assert HeaderScanner().feed(stream) is None


def test_a_bad_length_is_found_before_the_mask_key():
    assert HeaderScanner().feed(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63)) == TOP_BIT
    assert HeaderScanner().feed(bytes([0x82, 0xFE]) + struct.pack("!H", 5)) == MINIMAL
