"""How the protocol tests make their input: an opening handshake, a stream cut into
chunks, and a chunk as the relay hands it to a session."""
from hypothesis import strategies as st

from websockify.protocol.handshake import HandshakeResult, perform_handshake
from websockify.protocol.http import RequestReader

KEY_HEAD = (b"GET /websockify HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def handshake_raw(raw: bytes, max_bytes: int = 1000) -> HandshakeResult:
    head = RequestReader().feed(raw)
    assert head is not None
    return perform_handshake(head.target, head.headers, max_bytes)


def handshake(protocols: str = "", max_bytes: int = 1000) -> HandshakeResult:
    extra = f"Sec-WebSocket-Protocol: {protocols}\r\n".encode() if protocols else b""
    return handshake_raw(KEY_HEAD + extra + b"\r\n", max_bytes)


def split(data: bytes, cuts: list) -> list:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])] if data else []


@st.composite
def chunkings(draw, data: bytes) -> list:
    """`data` cut into non-empty chunks: anywhere, or one byte at a time."""
    if draw(st.integers(0, 9)) == 0:
        return [data[i:i + 1] for i in range(len(data))]
    return split(data, draw(st.lists(st.integers(0, len(data)), max_size=12)))


def receive(session, chunk: bytes) -> list:
    """`session.receive_data(chunk)` with the chunk a view of a read buffer that the next
    read overwrites (server/connection.py shares one across connections)."""
    buffer = bytearray(chunk)
    with memoryview(buffer) as view:
        out = session.receive_data(view)
    buffer[:] = b"\xee" * len(buffer)  # the next read: anything the session kept a view of changes
    assert all(type(payload) is bytes for payload in out), "a payload refers to the read buffer"
    return out
