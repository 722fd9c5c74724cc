"""An open WebSocket session (websocket.py), driven with bytes only."""
import base64

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import WebSocketURI as Uri

from websockify.protocol.websocket import WebSocketSession

from .inputs import handshake


def session(protocols: str = "", max_bytes: int = 1000) -> WebSocketSession:
    result = handshake(protocols, max_bytes)
    assert result.accepted
    return WebSocketSession(result.subprotocol, max_bytes)


def client_frame(opcode, data, fin=True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def sent_close(s: WebSocketSession) -> int:
    out = b"".join(s.data_to_send())
    assert out[0] == 0x88
    return int.from_bytes(out[2:4], "big")


def test_binary_messages_and_fragments_reach_the_target():
    s = session("binary")
    data = client_frame(Opcode.BINARY, b"ab", fin=False) + client_frame(Opcode.CONT, b"cd")
    assert s.receive_data(data) == [b"ab", b"cd"]
    assert s.send_payload(b"\x01\x02") is True
    assert b"".join(s.data_to_send()) == b"\x82\x02\x01\x02"


@pytest.mark.parametrize("length", [0, 1, 125, 126, 1023, 1024, 65535, 65536])
@pytest.mark.parametrize("protocols", ["binary", "base64"])
def test_target_messages_of_every_header_size_are_framed_whole(protocols, length):
    s = session(protocols, 1 << 20)
    data = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    s.send_payload(data)
    parser = ClientProtocol(Uri(False, "h", 80, "/", "/"), state=State.OPEN, max_size=None)
    parser.receive_data(b"".join(s.data_to_send()))
    [frame] = parser.events_received()
    assert frame.fin
    if protocols == "base64":
        assert (frame.opcode, base64.b64decode(frame.data)) == (Opcode.TEXT, data)
    else:
        assert (frame.opcode, frame.data) == (Opcode.BINARY, data)


def test_base64_both_ways():
    s = session("base64")
    assert s.receive_data(client_frame(Opcode.TEXT, base64.b64encode(b"hey"))) == [b"hey"]
    s.send_payload(b"hey")
    assert b"".join(s.data_to_send()) == b"\x81\x04" + base64.b64encode(b"hey")


def test_ping_is_answered_with_pong():
    s = session()
    assert s.receive_data(client_frame(Opcode.PING, b"p")) == []
    assert b"".join(s.data_to_send()) == b"\x8a\x01p"


def test_the_heartbeats_ping_is_framed_here_or_by_websockets_and_not_once_closing():
    s = session()
    s.ping()
    assert s.data_to_send() == [b"\x89\x00"]
    s.receive_data(client_frame(Opcode.PING, b"p"))  # websockets is reading now
    s.data_to_send()
    s.ping()
    assert b"".join(s.data_to_send()) == b"\x89\x00"
    s.close(1000)
    s.data_to_send()
    s.ping()
    assert s.data_to_send() == []


def test_too_big_is_1009_bad_utf8_is_1007_unmasked_is_1002():
    s = session(max_bytes=10)
    s.receive_data(client_frame(Opcode.BINARY, b"x" * 11))
    assert sent_close(s) == 1009 and s.client_done
    s = session()
    s.receive_data(client_frame(Opcode.TEXT, b"\xff"))
    assert sent_close(s) == 1007
    s = session()
    s.receive_data(Frame(Opcode.BINARY, b"x").serialize(mask=False))
    assert sent_close(s) == 1002


def test_data_before_a_bad_frame_is_still_delivered():
    s = session("base64")
    data = client_frame(Opcode.TEXT, base64.b64encode(b"good")) + client_frame(Opcode.TEXT, b"!!!!")
    assert s.receive_data(data) == [b"good"]
    assert sent_close(s) == 1007


def test_close_handshake_and_eof():
    s = session()
    assert s.receive_data(client_frame(Opcode.BINARY, b"x") + client_frame(Opcode.CLOSE, Close(1000, "").serialize())) == [b"x"]
    assert s.client_done and s.close_code == 1000
    assert s.data_to_send()[-1] == b""  # the server ends the TCP stream


def test_a_close_frame_is_echoed_here_in_pieces_and_whole():
    close = client_frame(Opcode.CLOSE, Close(1001, "bye").serialize())
    s = session()
    assert s.receive_data(close[:5]) == [] and not s.client_done  # waits for the whole frame
    assert s.receive_data(close[5:]) == []
    out = s.data_to_send()
    assert out[0] == b"\x88\x05" + Close(1001, "bye").serialize() and out[-1] == b""
    assert s.close_code == 1001 and s.close_reason == "bye"


@pytest.mark.parametrize("payload,code", [
    (b"\x03\xed", 1002),  # 1005 may not be sent
    (b"\x03\xe8\xff", 1007),  # a reason that is not UTF-8
    (b"\x03", 1002),  # one byte: no code
])
def test_a_close_frame_websockets_refuses_is_failed_by_websockets(payload, code):
    s = session()
    s.receive_data(client_frame(Opcode.CLOSE, payload))
    assert sent_close(s) == code and s.client_done


def test_a_close_inside_a_fragmented_message_is_websockets_to_judge():
    s = session()
    assert s.receive_data(client_frame(Opcode.TEXT, b"he", fin=False)) == [b"he"]  # fragments go as they come
    assert s.receive_data(client_frame(Opcode.CLOSE, Close(1000, "").serialize())) == []
    assert s.client_done and s.close_code == 1002 and s.close_reason == "incomplete fragmented message"


def test_after_a_fragmented_message_the_fast_path_reads_again():
    s = session()
    message = (client_frame(Opcode.BINARY, b"a", fin=False) + client_frame(Opcode.CONT, b"b", fin=False)
               + client_frame(Opcode.CONT, b"c") + client_frame(Opcode.BINARY, b"d"))
    assert s.receive_data(message) == [b"a", b"b", b"c", b"d"]
    assert s._protocol is not None and not s._fragmented


def test_a_reserved_bit_is_1002():
    frame = bytearray(client_frame(Opcode.BINARY, b"x"))
    frame[0] |= 0x40
    s = session()
    assert s.receive_data(bytes(frame)) == []
    assert sent_close(s) == 1002


def test_target_close_then_client_data_still_flows_until_its_close():
    s = session()
    s.close(1000, "Target closed")
    s.data_to_send()
    assert not s.is_open
    assert s.receive_data(client_frame(Opcode.BINARY, b"late")) == [b"late"]
    assert s.send_payload(b"dropped") is False
    assert s.data_to_send() == []


def test_vanished_client_is_1006():
    s = session()
    s.receive_eof()
    assert s.client_done and s.close_code == 1006


def test_a_read_of_tiny_frames_is_read_a_budget_at_a_time():
    from websockify.protocol.websocket import FRAMES_PER_CALL
    s = session()
    stream = b"".join(client_frame(Opcode.BINARY, b"%d" % (i % 10)) for i in range(1000))
    first = s.receive_data(stream)
    assert len(first) == FRAMES_PER_CALL and s.backlogged
    rest = []
    while s.backlogged:
        rest += s.receive_data(b"")
    assert b"".join(first + rest) == b"".join(b"%d" % (i % 10) for i in range(1000))
    assert not s.client_done


def test_large_frames_are_read_a_payload_budget_at_a_time():
    from websockify.protocol.websocket import PAYLOAD_BYTES_PER_CALL
    s = session(max_bytes=1 << 20)
    stream = client_frame(Opcode.BINARY, b"x" * 100_000) * 6
    first = s.receive_data(stream)
    assert sum(map(len, first)) < PAYLOAD_BYTES_PER_CALL + 100_000 and s.backlogged
    while s.backlogged:
        first += s.receive_data(b"")
    assert len(first) == 6 and all(p == b"x" * 100_000 for p in first)
