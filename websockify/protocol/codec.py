"""Payload rules of the two subprotocols.

`binary`: a message's payload is the raw bytes for the target. A text message
(allowed, though unusual in this mode) is forwarded as its UTF-8 bytes.
`base64`: every message is base64 text, in both directions. Fragments need not
end on a 4-character boundary, so the decoder carries the remainder.
"""
from __future__ import annotations

import base64
import binascii
import codecs

from ..errors import PayloadError

BINARY = "binary"
BASE64 = "base64"
SUBPROTOCOLS = (BINARY, BASE64)


class MessageDecoder:
    """Turns the fragments of one client message into bytes for the target."""

    def __init__(self, subprotocol: str | None, is_text: bool):
        self._base64 = subprotocol == BASE64
        self._utf8 = codecs.getincrementaldecoder("utf-8")() if is_text and not self._base64 else None
        self._carry = b""
        self._padded = False  # a fragment ended in "=": the message's data is over

    def feed(self, data: "bytes | bytearray | memoryview", fin: bool) -> bytes:
        if self._base64:
            return self._feed_base64(data, fin)
        if self._utf8 is not None:
            try:
                self._utf8.decode(data, final=fin)
            except UnicodeDecodeError as exc:
                raise PayloadError(f"invalid UTF-8 in text message: {exc.reason}") from None
        return bytes(data)

    def _feed_base64(self, data: "bytes | bytearray | memoryview", fin: bool) -> bytes:
        text = self._carry + bytes(data) if self._carry else bytes(data)
        usable = len(text) if fin else len(text) - len(text) % 4
        self._carry = bytes(text[usable:])
        if fin and usable % 4:
            raise PayloadError("base64 message length is not a multiple of 4")
        if self._padded and text:
            # Decoding fragment by fragment would accept what the whole message refuses.
            raise PayloadError("invalid base64 message: data after padding")
        try:
            decoded = base64.b64decode(text[:usable], validate=True)
        except binascii.Error as exc:
            raise PayloadError(f"invalid base64 message: {exc}") from None
        self._padded = self._padded or text[usable - 1:usable] == b"="
        return decoded


def encode_for_client(subprotocol: str | None, data: bytes) -> tuple[bool, bytes]:
    """Target bytes → (is_text, payload) of the message to send to the client."""
    if subprotocol == BASE64:
        return True, base64.b64encode(data)
    return False, data
