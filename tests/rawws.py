"""A raw-socket WebSocket client for tests that must send what no library sends:
floods of pings or tiny frames, malformed headers, stalls between stages."""
from __future__ import annotations

import base64
import os
import socket
import struct

from helpers import timeout, unsent_bytes, wait_steady


def frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """One masked client frame, the length in its minimal form."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def upgrade_request(path: str = "/", extra: str = "", host: str = "localhost") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: binary\r\n{extra}\r\n").encode("latin-1")


def read_head(sock: socket.socket) -> bytes:
    """Read up to the end of an HTTP response head (and not beyond it)."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


def open_websocket(port: int, path: str = "/", extra: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    sock.sendall(upgrade_request(path, extra))
    head = read_head(sock)
    assert status_of(head) == 101, head
    return sock


def open_unix_websocket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout(20))
    sock.connect(path)
    sock.sendall(upgrade_request())
    assert status_of(read_head(sock)) == 101
    return sock


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """(opcode, payload) of the next server frame (never masked, never fragmented here)."""
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("connection closed inside a frame")
            data += chunk
        return data
    first, second = exact(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exact(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exact(8))
    return first & 0x0F, exact(length)


def close_code(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def read_until_close(sock: socket.socket) -> int | None:
    """Skip data frames; return the close code of the server's close frame."""
    while True:
        opcode, payload = read_frame(sock)
        if opcode == 0x8:
            return close_code(payload)


def upgrade_status(port: int, path: str = "/", extra: str = "") -> int:
    """The status line's code of the answer to an upgrade request; the connection is then closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(upgrade_request(path, extra))
        return status_of(read_head(sock))


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` on a fresh connection and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def send_until_stalled(sock: socket.socket, message: bytes, seconds: float = 30) -> tuple[int, bytes]:
    """Send `message` again and again without blocking until the peer reads no more:
    our send queue stands still. Returns the bytes sent and the unsent rest of the
    last message, which must go out before anything else. The socket is left
    non-blocking."""
    sock.setblocking(False)
    pending, sent = memoryview(b""), 0

    def stalled() -> object:
        nonlocal pending, sent
        try:
            while True:
                if not pending:
                    pending = memoryview(message)
                count = sock.send(pending)
                pending, sent = pending[count:], sent + count
        except BlockingIOError:
            pass
        return unsent_bytes(sock) or None

    wait_steady(stalled, seconds, "the peer to stop reading")
    return sent, bytes(pending)
