"""An open WebSocket seen from the relay: client frames → target bytes, target bytes → frames.

Pings are answered and close handshakes run inside websockets' ServerProtocol;
this layer adds the subprotocol's payload rules, strict frame headers
(frames.py) and a cap on fragments per message, and tells the relay what
happened. It never raises on bad client input: it closes with the right code
(1002 protocol error, 1007 bad payload, 1008 too many fragments, 1009 too big)
and reports it.
"""
from __future__ import annotations

from typing import Optional, Protocol

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..errors import CloseCode, PayloadError
from .codec import MessageDecoder, encode_for_client
from .frames import HeaderScanner

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
# Fragments of one message. Empty continuation frames never reach the size
# limit, so without a count one client could keep a message open forever.
MAX_FRAGMENTS = 1024


class RelaySession(Protocol):
    """What the relay needs of a client session: WebSocketSession, or HixieSession."""

    def receive_data(self, data: bytes) -> list[bytes]: ...
    def receive_eof(self) -> list[bytes]: ...
    def send_payload(self, data: bytes) -> None: ...
    def close(self, code: int, reason: str = "") -> None: ...
    def ping(self) -> None: ...
    def data_to_send(self) -> list[bytes]: ...
    @property
    def is_open(self) -> bool: ...
    @property
    def client_done(self) -> bool: ...
    @property
    def close_code(self) -> Optional[int]: ...
    @property
    def close_reason(self) -> str: ...


class WebSocketSession:
    def __init__(self, protocol: ServerProtocol, subprotocol: Optional[str]):
        self._protocol = protocol
        self.subprotocol = subprotocol
        self._decoder: Optional[MessageDecoder] = None
        self._fragments = 0
        self._headers = HeaderScanner()
        self._eof_received = False
        self._failed = False

    # -- client → target -------------------------------------------------

    def receive_data(self, data: bytes) -> list[bytes]:
        """Feed bytes from the client; return the payload bytes for the target, in order."""
        if self._eof_received or self.client_done:
            return []
        error = self._headers.feed(data)
        if error is None:
            self._protocol.receive_data(data)
            return self._payloads()
        # The frames before the bad header came first: deliver them, or fail on their own error.
        out: list[bytes] = []
        if self._headers.error_offset > 0:
            self._protocol.receive_data(data[:self._headers.error_offset])
            out = self._payloads()
        if not self.client_done:
            self._fail(CloseCode.PROTOCOL_ERROR, error)
        return out

    def receive_eof(self) -> list[bytes]:
        """The client's TCP stream ended (with or without a close frame)."""
        if self._eof_received:
            return []
        self._eof_received = True
        self._protocol.receive_eof()
        return self._payloads()

    def _payloads(self) -> list[bytes]:
        out: list[bytes] = []
        for event in self._protocol.events_received():
            if not isinstance(event, Frame) or event.opcode not in _DATA_OPCODES:
                continue
            if event.opcode is not Opcode.CONT:
                self._decoder = MessageDecoder(self.subprotocol, event.opcode is Opcode.TEXT)
                self._fragments = 0
            assert self._decoder is not None  # ServerProtocol rejects a stray continuation
            self._fragments += 1
            if self._fragments > MAX_FRAGMENTS:
                self._fail(CloseCode.POLICY_VIOLATION, f"more than {MAX_FRAGMENTS} fragments in a message")
                break
            try:
                payload = self._decoder.feed(event.data, event.fin)
            except PayloadError as exc:
                self._fail(exc.close_code, str(exc)[:120])
                break
            if event.fin:
                self._decoder = None
            if payload:
                out.append(payload)
        return out

    def _fail(self, code: int, reason: str) -> None:
        self._protocol.fail(code, reason)
        self._decoder = None
        self._failed = True

    # -- target → client -------------------------------------------------

    def send_payload(self, data: bytes) -> None:
        """Queue bytes from the target as one message to the client."""
        if self._protocol.state is not State.OPEN:
            return
        is_text, payload = encode_for_client(self.subprotocol, data)
        if is_text:
            self._protocol.send_text(payload)
        else:
            self._protocol.send_binary(payload)

    def ping(self) -> None:
        """Queue a ping (the heartbeat); the client's pong is handled by websockets."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_ping(b"")

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake, once."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)

    def data_to_send(self) -> list[bytes]:
        """Bytes for the client; an empty bytes object means: end the TCP stream."""
        return self._protocol.data_to_send()

    # -- state -----------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._protocol.state is State.OPEN

    @property
    def client_done(self) -> bool:
        """No more client data will come: close frame received, failure, or EOF."""
        return (self._eof_received or self._failed or self._protocol.close_rcvd is not None
                or self._protocol.parser_exc is not None)

    @property
    def close_code(self) -> Optional[int]:
        close: Optional[Close] = self._protocol.close_sent or self._protocol.close_rcvd
        if close is not None:
            return close.code
        if self._eof_received:
            return CloseCode.ABNORMAL
        return None

    @property
    def close_reason(self) -> str:
        close = self._protocol.close_sent or self._protocol.close_rcvd
        return close.reason if close is not None else ""
