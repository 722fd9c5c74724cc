"""Properties of an open WebSocket session, for any client byte stream in any chunks."""
import struct

from websockets.datastructures import Headers

from websockify.protocol.handshake import perform_handshake
from websockify.protocol.websocket import WebSocketSession

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def session(subprotocol, max_bytes):
    headers = Headers([("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
    if subprotocol:
        headers["Sec-WebSocket-Protocol"] = subprotocol
    result = perform_handshake("/", headers, max_bytes)
    assert result.accepted and result.subprotocol == subprotocol
    return WebSocketSession(result.protocol, result.subprotocol)


def frame(opcode, payload=b"", fin=True, key=b"\x01\x02\x03\x04", rsv=0, length_form=None, length=None):
    """A client frame; `length_form` 7, 16 or 64 forces how the length is written."""
    length = len(payload) if length is None else length
    form = length_form or (7 if length < 126 else 16 if length < 1 << 16 else 64)
    mask_bit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if form == 7:
        head += bytes([mask_bit | length])
    elif form == 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# -- regressions ------------------------------------------------------------------

def test_frames_before_a_bad_length_in_the_same_read_reach_the_target():
    s = session("binary", 1000)
    non_minimal = frame(BINARY, b"x" * 5, length_form=16)
    assert s.receive_data(frame(BINARY, b"good") + non_minimal) == [b"good"]
    assert s.client_done and s.close_code == 1002


def test_a_length_with_its_top_bit_set_is_1002_before_the_mask_key_arrives():
    s = session(None, 1000)
    header = frame(BINARY, b"", length_form=64, length=1 << 63)
    assert s.receive_data(header[:10]) == []  # websockets would call it too big (1009)
    assert s.client_done and s.close_code == 1002
