"""The opening handshake, through websockets' Sans-I/O ServerProtocol (RFC 6455 §4.2).

We parse the request head ourselves (see http.py) to route it; a WebSocket
request is then replayed into a fresh ServerProtocol, which validates it and
builds the 101 response or the HTTP error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from websockets.exceptions import NegotiationError
from websockets.http11 import Request
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
    request: Optional[Request]
    to_send: list[bytes]
    error: Optional[str]


def perform_handshake(raw: bytes, max_message_bytes: int) -> HandshakeResult:
    """Run the upgrade on the bytes received so far (a complete head, maybe more)."""
    protocol = ServerProtocol(select_subprotocol=select_subprotocol, max_size=max_message_bytes)
    protocol.receive_data(raw)
    request = next((e for e in protocol.events_received() if isinstance(e, Request)), None)
    if request is None:
        # The head was complete (we parsed it), so websockets refused it as a request.
        error: Optional[str] = str(protocol.handshake_exc or "invalid request")
        response = protocol.reject(400, f"Failed to open a WebSocket connection: {error}.\n")
        protocol.send_response(response)
        return HandshakeResult(protocol, False, None, None, protocol.data_to_send(), error)
    response = protocol.accept(request)
    protocol.send_response(response)
    accepted = response.status_code == 101
    error = None if accepted else str(protocol.handshake_exc)
    return HandshakeResult(
        protocol, accepted, protocol.subprotocol, request, protocol.data_to_send(), error)
