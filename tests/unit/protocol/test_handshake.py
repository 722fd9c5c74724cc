"""The opening handshake (RFC 6455 §4.2.2) through websockets' ServerProtocol."""
from .inputs import KEY_HEAD, handshake, handshake_raw


def test_accepts_and_picks_the_clients_first_known_subprotocol():
    result = handshake("chat, base64, binary")
    assert result.accepted and result.subprotocol == "base64"
    assert result.response.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Protocol: base64" in result.response
    assert handshake("").subprotocol is None


def test_unknown_subprotocols_only_are_refused_with_400():
    result = handshake("chat")
    assert not result.accepted and result.response.startswith(b"HTTP/1.1 400")


def test_missing_key_is_refused():
    result = handshake_raw(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert not result.accepted and result.response.startswith(b"HTTP/1.1 400")


def test_an_unknown_version_is_426_naming_version_13():
    result = handshake_raw(KEY_HEAD.replace(b"Version: 13", b"Version: 8") + b"\r\n")
    assert not result.accepted and result.response.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in result.response
    assert result.error == "invalid Sec-WebSocket-Version header: 8"


def test_a_missing_version_is_400():
    result = handshake_raw(KEY_HEAD.replace(b"Sec-WebSocket-Version: 13\r\n", b"") + b"\r\n")
    assert not result.accepted and result.response.startswith(b"HTTP/1.1 400")
