"""One end of a WebSocket, either side, for upstream's socket-like `websockify.websocket.WebSocket`.

Theory of operation. websockets' Sans-I/O ServerProtocol or ClientProtocol
checks the handshake, parses and masks frames, answers pings and runs the
closing handshake; this adapter reads its decisions the way upstream's class
presented them: whole binary messages, pings and pongs as events of their
own, the close frame's code and reason. The caller keeps the socket and
decides when to read and write it.

Upstream's rules that its importers rely on, kept here:
- a text message is refused with 1003 (upstream's class carried bytes only);
- the server's `select_subprotocol` must choose one of the offered protocols
  when any is offered, and a client that offered some refuses a reply that
  chose none;
- versions 7 and 8 (the HyBi drafts, whose framing is RFC 6455's) are accepted
  beside 13, and a request missing `Connection: Upgrade` is not refused (the
  HTTP server already routed it on its Upgrade header).
"""
from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus, InvalidURI, NegotiationError, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

TEXT_REFUSED = "Unsupported: Text frames are not supported"  # upstream's reason, word for word
_VERSIONS = {"7": 7, "8": 8, "13": 13}
_UNSUPPORTED_DATA = 1003


class _WarningsOnly(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every open and close at INFO; upstream's library logged none of them."""

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)


_LOGGER = _WarningsOnly(logging.getLogger("websockify.websocket"), {})


class HandshakeError(Exception):
    """The opening handshake failed; the text says why (upstream raised a plain Exception)."""


class EventKind(enum.Enum):
    MESSAGE = "message"
    PING = "ping"
    PONG = "pong"
    CLOSE = "close"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    data: bytes = b""


@dataclass(frozen=True)
class Target:
    """Where a client connects: from a ws://, wss://, http:// or https:// URI."""
    host: str
    port: int
    tls: bool
    uri: str  # the same, in the ws:// or wss:// form websockets reads


def parse_target(uri: str) -> Target:
    """ValueError for a scheme other than ws, wss, http and https, or a malformed URI."""
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    ws_scheme = {"ws": "ws", "http": "ws", "wss": "wss", "https": "wss"}.get(scheme)
    if not sep or ws_scheme is None:
        raise ValueError(f"Unknown scheme '{scheme}'")
    ws_uri = f"{ws_scheme}://{rest}"
    try:
        parsed = parse_uri(ws_uri)
    except InvalidURI as exc:
        raise ValueError(str(exc)) from None
    return Target(parsed.host, parsed.port, parsed.secure, ws_uri)


@dataclass(frozen=True)
class Accepted:
    """A server's accepted handshake: the 101 response's headers, except Date (the HTTP
    server that writes them adds its own), the chosen subprotocol and the request's version."""
    headers: list[tuple[str, str]]
    subprotocol: str | None
    version: int


def _handshake_failure(exc: BaseException | None) -> HandshakeError:
    if isinstance(exc, InvalidStatus):
        response = exc.response
        return HandshakeError(f"WebSocket request denied: {response.status_code} {response.reason_phrase}")
    text = str(exc) if exc is not None else "invalid handshake"
    cause = exc.__cause__ if exc is not None else None
    return HandshakeError(f"{text}: {cause}" if cause is not None else text)


def accept(headers: Iterable[tuple[str, str]], choose: Callable[[list[str]], str | None],
           max_message_bytes: int | None = None) -> tuple[Endpoint, Accepted]:
    """The server side, from a request's headers already read by an HTTP server.

    `choose(offered)` picks the subprotocol (upstream's `select_subprotocol`). HandshakeError
    when the request is not a WebSocket upgrade this side can accept.
    """
    request_headers = Headers(list(headers))
    version = _VERSIONS.get(request_headers.get("Sec-WebSocket-Version", ""))
    if version is None:
        raise HandshakeError("Unsupported protocol version "
                             f"{request_headers.get('Sec-WebSocket-Version', '(none)')}")
    if version != 13:
        del request_headers["Sec-WebSocket-Version"]
        request_headers["Sec-WebSocket-Version"] = "13"
    if "Connection" not in request_headers:
        request_headers["Connection"] = "Upgrade"

    def select(_protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        chosen = choose(list(offered))
        if (offered or chosen) and chosen not in offered:
            raise NegotiationError("Invalid protocol selected")
        return Subprotocol(chosen) if chosen else None

    handshake = ServerProtocol(select_subprotocol=select, logger=_LOGGER)
    response = handshake.accept(Request("/", request_headers))
    if response.status_code != 101:
        raise _handshake_failure(handshake.handshake_exc)
    # The request was read by the caller's HTTP server, so the protocol that reads the frames
    # starts OPEN: one created CONNECTING would parse the first frame as a request line.
    session = ServerProtocol(state=State.OPEN, max_size=max_message_bytes, logger=_LOGGER)
    session.subprotocol = handshake.subprotocol
    accepted = Accepted([(name, value) for name, value in response.headers.raw_items() if name != "Date"],
                        handshake.subprotocol, version)
    return Endpoint(session), accepted


def connect(target: Target, origin: str | None = None, subprotocols: Sequence[str] = (),
            max_message_bytes: int | None = None) -> tuple[Endpoint, bytes]:
    """The client side: the endpoint, waiting for the response, and the request to send."""
    protocol = ClientProtocol(parse_uri(target.uri), origin=Origin(origin) if origin is not None else None,
                              subprotocols=[Subprotocol(name) for name in subprotocols] or None,
                              max_size=max_message_bytes, logger=_LOGGER)
    protocol.send_request(protocol.connect())
    return Endpoint(protocol, offered=list(subprotocols)), b"".join(protocol.data_to_send())


class Endpoint:
    """Bytes in, events out; calls in, bytes out. Never raises on what the peer sends,
    except HandshakeError for a client's refused handshake."""

    def __init__(self, protocol: Protocol, offered: list[str] | None = None):
        self._protocol = protocol
        self._offered = offered  # the client's offer, checked against the response
        self._events: deque[Event] = deque()
        self._fragments: list[bytes] = []
        self._refusing = False  # the rest of a refused text message is skipped
        self.handshake_done = protocol.state is not State.CONNECTING
        self.subprotocol: str | None = protocol.subprotocol

    # -- receiving -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        self._collect()

    def receive_eof(self) -> None:
        self._protocol.receive_eof()
        self._collect()

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def pending(self) -> bool:
        """Events received and not yet taken."""
        return bool(self._events)

    def _collect(self) -> None:
        for event in self._protocol.events_received():
            if isinstance(event, Response):
                self._handshake_response()
            elif isinstance(event, Frame):
                self._frame(event)
        if not self.handshake_done and self._protocol.handshake_exc is not None:
            raise _handshake_failure(self._protocol.handshake_exc)

    def _handshake_response(self) -> None:
        if self._protocol.handshake_exc is not None:
            raise _handshake_failure(self._protocol.handshake_exc)
        chosen = self._protocol.subprotocol
        if self._offered and chosen is None:  # upstream refused this; websockets accepts it
            raise HandshakeError("Invalid protocol chosen by server")
        self.subprotocol = chosen
        self.handshake_done = True

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.BINARY:
            if frame.fin:
                self._events.append(Event(EventKind.MESSAGE, bytes(frame.data)))
            else:
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            if not self._refusing:
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    self._events.append(Event(EventKind.MESSAGE, b"".join(self._fragments)))
            if frame.fin:
                self._fragments, self._refusing = [], False
        elif opcode is Opcode.TEXT:
            self._refusing = not frame.fin
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(_UNSUPPORTED_DATA, TEXT_REFUSED)
        elif opcode is Opcode.PING:  # websockets has queued the pong already
            self._events.append(Event(EventKind.PING, bytes(frame.data)))
        elif opcode is Opcode.PONG:
            self._events.append(Event(EventKind.PONG, bytes(frame.data)))
        elif opcode is Opcode.CLOSE:
            self._events.append(Event(EventKind.CLOSE))

    # -- sending -------------------------------------------------------------

    def send_binary(self, data: bytes) -> None:
        self._protocol.send_binary(data)

    def send_ping(self, data: bytes) -> None:
        self._protocol.send_ping(data)

    def send_pong(self, data: bytes) -> None:
        self._protocol.send_pong(data)

    def send_close(self, code: int | None, reason: str = "") -> None:
        """ValueError for a code RFC 6455 does not let an endpoint send (1005, 1006, 999...)."""
        try:
            if code is None:
                self._protocol.send_close()
            else:
                self._protocol.send_close(code, reason)
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None

    def data_to_send(self) -> bytes:
        """Everything queued to write (websockets' end-of-stream marker, b"", drops out: the
        caller closes the socket once `finished`)."""
        return b"".join(self._protocol.data_to_send())

    # -- state ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._protocol.state is State.OPEN

    @property
    def close_sent(self) -> tuple[int, str] | None:
        sent = self._protocol.close_sent
        return (int(sent.code), sent.reason) if sent is not None else None

    @property
    def close_received(self) -> tuple[int, str] | None:
        """The peer's close frame: (1005, "") when it carried no code."""
        received = self._protocol.close_rcvd
        return (int(received.code), received.reason) if received is not None else None

    @property
    def finished(self) -> bool:
        """Nothing more will be read: both close frames exchanged, the connection failed
        (websockets sent its close and reads no further), or the stream ended."""
        protocol = self._protocol
        return ((protocol.close_sent is not None and protocol.close_rcvd is not None)
                or protocol.parser_exc is not None or protocol.state is State.CLOSED)
