"""The opening handshake, through websockets' Sans-I/O ServerProtocol (RFC 6455 §4.2).

We parse the request head ourselves (see http.py) to route it, so the request
is handed to websockets as a `Request` rather than parsed a second time: a
ServerProtocol created in the OPEN state reads frames from its first byte,
and its `accept()` validates the request and builds the 101 response or the
HTTP error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue, NegotiationError
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from .codec import SUBPROTOCOLS


def select_subprotocol(_protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Optional[Subprotocol]:
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
    protocol: ServerProtocol
    accepted: bool
    subprotocol: Optional[str]
    response: bytes
    error: Optional[str]


def perform_handshake(path: str, headers: Headers, max_message_bytes: int) -> HandshakeResult:
    """Validate a GET upgrade request; on success the protocol is ready for frames."""
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
    return HandshakeResult(protocol, accepted, protocol.subprotocol, response.serialize(), error)
