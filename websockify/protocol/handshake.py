"""The opening handshake (RFC 6455 §4.2).

The request head is parsed already (http.py). A well-formed upgrade — the one
every browser sends — is answered here: the accept key (websockets' helper)
in a prebuilt 101. Anything else goes to websockets' Sans-I/O ServerProtocol,
whose `accept()` decides and words the answer, so the rules and error
responses stay websockets'.
"""
from __future__ import annotations

import binascii
from base64 import b64decode
from dataclasses import dataclass
from typing import Sequence

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue, NegotiationError
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.utils import accept_key

from .codec import SUBPROTOCOLS


def select_subprotocol(_protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The first of the client's subprotocols we speak; none offered means binary."""
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    if offered:
        raise NegotiationError(
            f"unsupported subprotocol {', '.join(offered)}; expected one of {', '.join(SUBPROTOCOLS)}")
    return None


@dataclass
class HandshakeResult:
    accepted: bool
    subprotocol: str | None
    response: bytes
    error: str | None


_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"


def _tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",") if token.strip()]


def _fast_response(headers: Headers) -> tuple[str | None, bytes] | None:
    """(subprotocol, 101 response) for an ordinary valid upgrade; None for anything else."""
    try:
        key = headers.get("Sec-WebSocket-Key")
        connection = headers.get("Connection")
        upgrade = headers.get("Upgrade")
        version = headers.get("Sec-WebSocket-Version")
    except LookupError:  # a repeated header: websockets has the rule for it
        return None
    if version != "13" or key is None or connection is None or upgrade is None:
        return None
    if "upgrade" not in (t.lower() for t in _tokens(connection)) or upgrade.strip().lower() != "websocket":
        return None
    try:
        if len(b64decode(key.encode("ascii"), validate=True)) != 16:
            return None
    except (binascii.Error, UnicodeEncodeError):
        return None
    offered = [name for value in headers.get_all("Sec-WebSocket-Protocol") for name in _tokens(value)]
    subprotocol = next((name for name in offered if name in SUBPROTOCOLS), None)
    if offered and subprotocol is None:
        return None  # websockets refuses it with the reason
    response = _SWITCHING + b"Sec-WebSocket-Accept: " + accept_key(key).encode("ascii") + b"\r\n"
    if subprotocol is not None:
        response += b"Sec-WebSocket-Protocol: " + subprotocol.encode("ascii") + b"\r\n"
    return subprotocol, response + b"\r\n"


def perform_handshake(path: str, headers: Headers, max_message_bytes: int) -> HandshakeResult:
    """Validate a GET upgrade request: the 101, or the HTTP error to send."""
    fast = _fast_response(headers)
    if fast is not None:
        return HandshakeResult(True, fast[0], fast[1], None)
    protocol = ServerProtocol(select_subprotocol=select_subprotocol, max_size=max_message_bytes,
                              state=State.OPEN)
    response = protocol.accept(Request(path, headers))
    exc = protocol.handshake_exc
    if isinstance(exc, InvalidHeaderValue) and exc.name == "Sec-WebSocket-Version":
        # RFC 6455 §4.2.2: name the version we speak, so a client can retry with it.
        response = protocol.reject(426, f"Failed to open a WebSocket connection: {exc}.\n")
        response.headers["Sec-WebSocket-Version"] = "13"
    accepted = response.status_code == 101
    error = None if accepted else str(protocol.handshake_exc)
    return HandshakeResult(accepted, protocol.subprotocol, response.serialize(), error)
