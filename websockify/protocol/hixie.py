"""Hixie-76 (draft-hixie-thewebsocketprotocol-76), the framing the first websockify spoke.

Off by default (`--hixie76`). Browsers dropped it in 2011; it is here for old
embedded clients. Frames are 0x00 <UTF-8 text> 0xFF, a close is 0xFF 0x00, and
websockify carried base64 in the text, in both directions, as it did then.

The handshake answers a challenge: each of Sec-WebSocket-Key1/Key2 holds digits
and spaces; the digits as a number divided by the count of spaces, as two
big-endian 32-bit integers, followed by the 8 bytes after the request head,
hashed with MD5, is the 16-byte body of the 101 response.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from websockets.datastructures import Headers

from ..errors import CloseCode, HttpError

KEY3_BYTES = 8


def is_hixie76(headers: Headers) -> bool:
    return "Sec-WebSocket-Key1" in headers and "Sec-WebSocket-Key2" in headers \
        and "Sec-WebSocket-Key" not in headers


def _key_number(key: str) -> int:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses. A
    # valid number is at most 2**32 times the spaces; int() refuses 4300 digits.
    digits = "".join(c for c in key if c in "0123456789")
    spaces = key.count(" ")
    if not digits or spaces == 0 or len(digits) > 20 or int(digits) % spaces:
        raise HttpError(400, "invalid Sec-WebSocket-Key1/Key2")
    number = int(digits) // spaces
    if number > 0xFFFFFFFF:
        raise HttpError(400, "invalid Sec-WebSocket-Key1/Key2")
    return number


def challenge_response(key1: str, key2: str, key3: bytes) -> bytes:
    return hashlib.md5(struct.pack(">II", _key_number(key1), _key_number(key2)) + key3).digest()


def handshake_response(headers: Headers, target: str, key3: bytes, secure: bool) -> bytes:
    """The 101 response for a Hixie-76 request; HttpError(400) if it is malformed."""
    body = challenge_response(headers["Sec-WebSocket-Key1"], headers["Sec-WebSocket-Key2"], key3)
    host = headers.get("Host", "localhost")
    lines = [
        "HTTP/1.1 101 WebSocket Protocol Handshake",
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Origin: {headers.get('Origin', 'null')}",
        f"Sec-WebSocket-Location: {'wss' if secure else 'ws'}://{host}{target}",
    ]
    protocol = headers.get("Sec-WebSocket-Protocol")
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HixieSession:
    """An open Hixie-76 connection, with WebSocketSession's interface for the relay."""

    def __init__(self, max_message_bytes: int):
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._open = True
        self._client_done = False
        self._close_code: int | None = None
        self._close_reason = ""
        self.subprotocol = "base64"
        self.backlogged = False  # every frame of a read is read at once

    def receive_data(self, data: "bytes | memoryview") -> list[bytes]:
        if self._client_done:
            return []
        self._buffer += data
        payloads = []
        while self._buffer:
            if self._buffer[0] == 0xFF:
                if len(self._buffer) < 2:
                    break
                self._finish(CloseCode.NORMAL if self._buffer[1] == 0x00 else CloseCode.PROTOCOL_ERROR, "")
                break
            if self._buffer[0] != 0x00:
                self._finish(CloseCode.PROTOCOL_ERROR, "unsupported Hixie-76 frame type")
                break
            end = self._buffer.find(b"\xff", 1)
            # The text's size, whole or so far: a frame over the limit is refused
            # whether or not its end came in the same read.
            if (end if end >= 0 else len(self._buffer)) - 1 > self._max:
                self._finish(CloseCode.MESSAGE_TOO_BIG, "message too big")
                break
            if end < 0:
                break
            text = bytes(self._buffer[1:end])
            del self._buffer[:end + 1]
            try:
                payloads.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                self._finish(CloseCode.INVALID_DATA, "invalid base64")
                break
        return payloads

    def receive_eof(self) -> list[bytes]:
        if not self._client_done:
            self._finish(CloseCode.ABNORMAL, "")
        return []

    def _finish(self, code: int, reason: str) -> None:
        self._client_done = True
        if self._close_code is None:
            self._close_code, self._close_reason = code, reason
        if self._open:
            self._open = False
            self._out.append(b"\xff\x00")
        self._out.append(b"")  # end the TCP stream, as a WebSocket server does after closing

    def send_payload(self, data: bytes) -> bool:
        if not self._open:
            return False
        self._out.append(b"\x00" + base64.b64encode(data) + b"\xff")
        return True

    def ping(self) -> None:
        """Hixie-76 has no ping: the heartbeat only watches such a client."""

    def close(self, code: int, reason: str = "") -> None:
        if self._open:
            self._open = False
            self._close_code, self._close_reason = code, reason
            self._out.append(b"\xff\x00")

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def client_done(self) -> bool:
        return self._client_done

    @property
    def close_code(self) -> int | None:
        return self._close_code

    @property
    def close_reason(self) -> str:
        return self._close_reason
