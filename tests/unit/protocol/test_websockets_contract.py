"""The parts of websockets we rely on beyond its documented API, checked directly.

setup.py pins the tested range; if a release changes one of these, this file
says which, before any integration test does.
"""
import websockets
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask


def masked(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + apply_mask(payload, mask)


def test_version_is_in_the_pinned_range():
    assert websockets.version.version.split(".")[0] == "17"


def test_server_protocol_created_open_reads_frames_from_its_first_byte():
    protocol = ServerProtocol(state=State.OPEN, max_size=1024)
    protocol.receive_data(masked(0x2, b"hello") + masked(0x9, b"p"))
    events = protocol.events_received()
    assert [(e.opcode, e.data) for e in events if isinstance(e, Frame)] == [(Opcode.BINARY, b"hello"),
                                                                          (Opcode.PING, b"p")]
    assert protocol.data_to_send() == [bytes([0x8A, 1]) + b"p"]  # the pong, unmasked


def test_accept_validates_a_request_we_parsed_and_builds_the_101():
    headers = Headers([("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
    protocol = ServerProtocol(state=State.OPEN)
    response = protocol.accept(Request("/path", headers))
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert response.serialize().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    bad = ServerProtocol(state=State.OPEN)
    assert bad.accept(Request("/", Headers([("Host", "h")]))).status_code == 426
    assert bad.handshake_exc is not None


def test_close_and_failure_state_we_read():
    protocol = ServerProtocol(state=State.OPEN)
    protocol.receive_data(masked(0x8, b"\x03\xe8bye"))
    assert protocol.close_rcvd is not None and protocol.close_rcvd.code == 1000
    assert protocol.close_sent is not None and protocol.data_to_send()[-1] == b""  # EOF marker
    failing = ServerProtocol(state=State.OPEN)
    failing.receive_data(b"\x83\x80abcd")  # reserved opcode
    assert failing.parser_exc is not None and failing.close_sent is not None
    assert failing.close_sent.code == 1002


def test_headers_keep_latin1_values_and_duplicates():
    headers = Headers()
    headers["X"] = "caf\xe9"
    headers["X"] = "again"
    assert headers.get_all("x") == ["caf\xe9", "again"]
    assert list(headers.raw_items()) == [("X", "caf\xe9"), ("X", "again")]
