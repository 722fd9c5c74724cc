"""A bad payload length is judged where its length ends, for any chunking, and the frames
before it are delivered first: the session's header check against a reference reader."""
import struct

from hypothesis import given
from hypothesis import strategies as st

from websockify.protocol.frames import check_header
from websockify.protocol.websocket import WebSocketSession

MINIMAL = "payload length not in its minimal form"
TOP_BIT = "payload length with the most significant bit set"
MASK = b"\x01\x02\x03\x04"


def masked_binary(payload: bytes, form: int) -> bytes:
    """A masked binary frame whose length is written in `form` (7, 16 or 64 bits)."""
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    if form == 7:
        head = bytes([0x82, 0x80 | len(payload)])
    elif form == 16:
        head = bytes([0x82, 0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", len(payload))
    return head + MASK + masked


@given(st.integers(0, (1 << 64) - 1), st.sampled_from([126, 127]))
def test_check_header_wants_the_minimal_form_and_a_clear_top_bit(length, code):
    if code == 126:
        length &= 0xFFFF
        extended = struct.pack("!H", length)
    else:
        extended = struct.pack("!Q", length)
    got_length, error = check_header(bytes([0x82, 0x80 | code]) + extended)
    assert got_length == length
    if code == 127 and length >> 63:
        assert error == TOP_BIT
    elif (code == 126 and length < 126) or (code == 127 and length <= 0xFFFF):
        assert error == MINIMAL
    else:
        assert error is None


@st.composite
def good_then_bad(draw):
    good = draw(st.lists(st.binary(min_size=1, max_size=300), max_size=5))
    frames = b"".join(masked_binary(p, 16 if len(p) >= 126 else 7) for p in good)
    bad_payload = draw(st.binary(max_size=100))
    bad = masked_binary(bad_payload, draw(st.sampled_from([16, 64])))  # too long a form for < 126 bytes
    return good, frames + bad, len(frames) + (4 if bad[1] & 0x7F == 126 else 10)


@given(good_then_bad(), st.data())
def test_frames_before_a_bad_length_arrive_then_1002_for_any_chunking(case, data):
    good, stream, length_end = case
    session = WebSocketSession("binary", 1 << 20)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8))))
    received = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        received += session.receive_data(stream[start:end])
        if end >= length_end:
            assert session.client_done and session.close_code == 1002
            assert session.close_reason == MINIMAL
            break
        assert not session.client_done
    assert received == [p for p in good if p]
