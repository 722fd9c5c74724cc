import base64

import pytest
from websockets.datastructures import Headers

from websockify.errors import HttpError
from websockify.protocol.hixie import HixieSession, challenge_response, handshake_response, is_hixie76


def test_the_drafts_example_challenge():
    # draft-hixie-thewebsocketprotocol-76, section 1.3
    assert challenge_response("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", b"^n:ds[4U") == b"8jKS'y:G*Co,Wxa-"


def test_bad_keys_are_400():
    with pytest.raises(HttpError):
        challenge_response("nospaces123", "1 2", b"12345678")
    with pytest.raises(HttpError):
        challenge_response("7  ", "1 0", b"12345678")  # 7 is not a multiple of 2 spaces
    headers = Headers([("Sec-WebSocket-Key1", "1 2"), ("Sec-WebSocket-Key2", "3 4"), ("Host", "h")])
    assert is_hixie76(headers)
    assert handshake_response(headers, "/x", b"abcdefgh", False).startswith(b"HTTP/1.1 101 WebSocket Protocol Handshake")


def test_frames_both_ways_and_close():
    session = HixieSession(1000)
    data = b"\x00" + base64.b64encode(b"one") + b"\xff\x00" + base64.b64encode(b"two")
    assert session.receive_data(data) == [b"one"]
    assert session.receive_data(b"\xff") == [b"two"]
    assert session.send_payload(b"hi") is True
    assert session.data_to_send() == [b"\x00aGk=\xff"]
    assert session.receive_data(b"\xff\x00") == []
    assert session.client_done and session.close_code == 1000
    assert session.data_to_send() == [b"\xff\x00", b""]
    assert session.send_payload(b"late") is False and session.data_to_send() == []


def test_bad_input_closes():
    for data, code in ((b"\x80xx", 1002), (b"\x00!!!\xff", 1007), (b"\x00" + b"A" * 20, 1009)):
        session = HixieSession(10)
        session.receive_data(data)
        assert session.client_done and session.close_code == code
