"""An open WebSocket seen from the relay: client frames → target bytes, target bytes → frames.

Theory of operation. Almost every client frame is a complete, unfragmented,
masked binary or text message: those are read here, on a fast path (a header
of 2–14 bytes, websockets' C `apply_mask` on a view of the payload). Every other
frame — pings, pongs, closes, fragments, reserved bits, unmasked, oversized,
unknown opcodes — is handed, byte for byte and from its first byte, to
websockets' Sans-I/O ServerProtocol, created the first time one is needed; it
answers pings, runs the closing handshake and decides every protocol error, so
conformance stays websockets'. Frames never straddle the two: a frame is
either read here whole or fed to websockets whole, and once websockets is
reading a fragmented message or closing, it reads everything.

The ordinary end, a client's close frame before anything odd happened, is
answered here too, once websockets' own `Close.parse` has accepted its code and
reason: the frame is echoed and the stream ended, as websockets does; a close
frame it refuses goes to websockets to fail the connection.

Messages to the client are framed here (a server's frames are not masked),
except the control frames websockets sends; one queue keeps their order.

Strict headers: a payload length not in its minimal form, or with its top bit
set, is a protocol error here (websockets accepts the first and reads the
second as a size, 1009). A message of more than MAX_FRAGMENTS fragments closes
with 1008: empty continuation frames never reach the size limit.

It never raises on bad client input: it closes with the right code (1002
protocol error, 1007 bad payload, 1008 too many fragments, 1009 too big) and
reports it.
"""
from __future__ import annotations

import struct
from typing import Protocol

from websockets.exceptions import ProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask

from ..errors import CloseCode, PayloadError
from .codec import BASE64, MessageDecoder, encode_for_client
from .frames import check_header

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
MAX_FRAGMENTS = 1024
# Work per call to receive_data: a client sending tiny frames as fast as it can
# holds the event loop for about a millisecond at a time, and a target that does
# not read is given at most this much more than its write buffer holds.
FRAMES_PER_CALL = 256
PAYLOAD_BYTES_PER_CALL = 256 * 1024
# Opcodes as plain ints, bound once: the loop compares them with a frame's first
# byte per frame, and an exact int compares faster than an IntEnum member.
_TEXT, _BINARY, _CLOSE, _CONT = int(Opcode.TEXT), int(Opcode.BINARY), int(Opcode.CLOSE), int(Opcode.CONT)
_FIN = 0x80
_FIN_TEXT, _FIN_BINARY, _FIN_CLOSE = _FIN | _TEXT, _FIN | _BINARY, _FIN | _CLOSE
_PING = b"\x89\x00"


class RelaySession(Protocol):
    """What the relay needs of a client session: WebSocketSession, or HixieSession."""

    def receive_data(self, data: "bytes | memoryview") -> list[bytes]:
        """Payloads for the target: bytes objects of their own, never views of `data`,
        which may be a read buffer that the next read overwrites. Nothing of `data` is kept."""
    def receive_eof(self) -> list[bytes]: ...
    def send_payload(self, data: bytes) -> bool:
        """Queue target bytes as a message; False (and nothing queued) once the client is closing."""
    def close(self, code: int, reason: str = "") -> None: ...
    def ping(self) -> None: ...
    def data_to_send(self) -> list[bytes]: ...
    @property
    def is_open(self) -> bool: ...
    @property
    def client_done(self) -> bool: ...
    @property
    def backlogged(self) -> bool: ...
    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str: ...


def frame_header(first_byte: int, length: int) -> bytes:
    """A server frame's header (never masked)."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 65536:
        return struct.pack("!BBH", first_byte, 126, length)
    return struct.pack("!BBQ", first_byte, 127, length)


class WebSocketSession:
    __slots__ = ("_buffer", "_closed", "_decoder", "_eof_received", "_failed", "_fragmented", "_fragments", "_max",
                 "_out", "_protocol", "_to_websockets", "backlogged", "subprotocol")

    def __init__(self, subprotocol: str | None, max_message_bytes: int):
        self.subprotocol = subprotocol
        self._max = max_message_bytes
        self._protocol: ServerProtocol | None = None  # websockets, once a frame needs it
        self._buffer = bytearray()  # the start of a frame not complete yet
        self._to_websockets = 0  # bytes of the current frame that go to websockets
        self._fragmented = False  # websockets is reading a message in fragments
        self._decoder: MessageDecoder | None = None
        self._fragments = 0
        self._out: list[bytes] = []
        self._eof_received = False
        self._failed = False
        self._closed: Close | None = None  # the client's close frame, answered here
        self.backlogged = False  # frames wait in the buffer: the budget of the last call ran out

    def _websockets(self) -> ServerProtocol:
        if self._protocol is None:
            self._protocol = ServerProtocol(state=State.OPEN, max_size=self._max)
        return self._protocol

    # -- client → target -------------------------------------------------

    def receive_data(self, data: "bytes | memoryview") -> list[bytes]:
        """Feed bytes from the client; return the payload bytes for the target, in order
        (new bytes objects: `data` may be a reused read buffer, and is not kept).

        At most FRAMES_PER_CALL frames and about PAYLOAD_BYTES_PER_CALL bytes of
        payload are read per call; the rest waits (`backlogged`) for the next
        call, which may bring no new bytes at all.
        """
        if self.client_done:
            self.backlogged = False
            return []
        out: list[bytes] = []
        lacking = 0
        if self._buffer:
            # Complete the frame that waits in the buffer with just the bytes it lacks:
            # appending a whole read to the buffer would copy it, again and again.
            lacking = len(data) if self.backlogged else self._lacking(data)
            self._buffer += memoryview(data)[:lacking]
            with memoryview(self._buffer) as view:
                position = self._read_frames(view, out)
            if position < len(self._buffer) or self.client_done:
                del self._buffer[:position]  # O(1) in CPython: the start moves, nothing is copied
                if self.client_done:
                    self._buffer = bytearray()
                elif lacking < len(data):
                    self._buffer += memoryview(data)[lacking:]
                return out
            self._buffer = bytearray()
        with memoryview(data) as whole:
            view = whole[lacking:] if lacking else whole
            position = self._read_frames(view, out)
            if position < len(view) and not self.client_done:
                self._buffer = bytearray(view[position:])
            view.release()
        return out

    def _lacking(self, data: "bytes | memoryview") -> int:
        """How many bytes of `data` complete the frame that starts in the buffer."""
        head = bytes(self._buffer[:14])
        if len(head) < 14:
            head += data[:14 - len(head)]
        if len(head) < 2:
            return len(data)
        code = head[1] & 0x7F
        length_end = 2 if code < 126 else 4 if code == 126 else 10
        if len(head) < length_end:
            return len(data)  # a few bytes only: the rest of a header
        length = code if code < 126 else int.from_bytes(head[2:length_end], "big")
        frame = length_end + (4 if head[1] & 0x80 else 0) + length
        return max(0, min(len(data), frame - len(self._buffer)))

    def _read_frames(self, view: memoryview, out: list[bytes]) -> int:
        """Read or route whole frames from `view`; return where the unread part starts.

        Whole masked data frames are read inline (per frame, no call but apply_mask
        and, for text or base64, the decoder); every other frame is routed by the
        helpers below, which say what the loop does next."""
        position, end = 0, len(view)
        frames, payload_bytes = 0, 0
        self.backlogged = False
        spent = False  # the budget of this call is used up: the next frame waits, if there is one
        plain = self._plain_data_readable()  # changes only where a frame goes to websockets
        while position < end:
            if self._to_websockets:
                position = self._pass_to_websockets(view, position, out)
                if self.client_done:
                    return end
                plain = self._plain_data_readable()
                continue
            if end - position < 2:
                break
            first, second = view[position], view[position + 1]
            length = second & 0x7F
            if length < 126:
                length_end = 2
            else:  # a 16- or 64-bit length follows
                length_end = 4 if length == 126 else 10
                if end - position < length_end:
                    break
                length, error = check_header(bytes(view[position:position + length_end]))
                if error is not None:
                    self._fail(CloseCode.PROTOCOL_ERROR, error)
                    return end
            header = length_end + 4 if second & 0x80 else length_end
            # A whole unfragmented masked text or binary message: FIN set, no reserved bit.
            fast = plain and (first == _FIN_BINARY or first == _FIN_TEXT) and second & 0x80 and length <= self._max
            if spent:  # the budget is used up: a frame that is here waits for the next call
                self.backlogged = not fast or end - position >= header + length
                break
            if not fast:
                stop = self._other_frame(view, position, first, second, header, length)
                if stop is not None:
                    return stop
                frames += 1
                spent = frames >= FRAMES_PER_CALL
                plain = self._plain_data_readable()
                continue
            if end - position < header + length:
                break  # wait for the whole frame
            frames += 1
            payload_bytes += length
            spent = frames >= FRAMES_PER_CALL or payload_bytes >= PAYLOAD_BYTES_PER_CALL
            start = position + header
            payload = apply_mask(view[start:start + length], bytes(view[start - 4:start]))
            position = start + length
            if first == _FIN_TEXT or self.subprotocol == BASE64:
                try:
                    payload = MessageDecoder(self.subprotocol, first == _FIN_TEXT).feed(payload, True)
                except PayloadError as exc:
                    self._fail(exc.close_code, str(exc)[:120])
                    return end
            if payload:
                out.append(payload)
        return position

    def _plain_data_readable(self) -> bool:
        """May the next data frame be read here: no fragmented message under way, and
        websockets (if it was needed) still open."""
        return not self._fragmented and (self._protocol is None or self._protocol.state is State.OPEN)

    def _pass_to_websockets(self, view: memoryview, position: int, out: list[bytes]) -> int:
        """Feed websockets what `view` holds of the frame it reads; return the new position."""
        step = min(self._to_websockets, len(view) - position)
        self._feed_websockets(view[position:position + step], out)
        self._to_websockets -= step
        return position + step

    def _other_frame(self, view: memoryview, position: int, first: int, second: int, header: int,
                     length: int) -> int | None:
        """A frame the fast path does not read: the ordinary close is answered here, the
        rest goes to websockets, byte for byte, from the next turn of the loop (None).
        Otherwise, where reading stops: at the frame (incomplete), or the end (answered)."""
        if (first == _FIN_CLOSE and second & 0x80 and length <= 125 and self._protocol is None
                and not self._fragmented):
            if len(view) - position < header + length:
                return position
            if self._answer_close(view[position + header - 4:position + header + length]):
                return len(view)
            # Refused: websockets fails it with the right code as soon as it has it, so
            # counting it in the budget changes nothing.
            self._to_websockets = header + length
            return None
        opcode = first & 0x0F
        if opcode == _TEXT or opcode == _BINARY:
            self._fragmented = not first & _FIN
        elif opcode == _CONT and first & _FIN:
            self._fragmented = False
        self._to_websockets = header + length
        return None

    def _answer_close(self, masked: memoryview) -> bool:
        """Echo a client's close frame (`masked`: its key, then its payload) and end the
        stream, as websockets does; False if websockets' Close.parse refuses it."""
        payload = apply_mask(masked[4:], bytes(masked[:4]))
        try:
            self._closed = Close.parse(payload)
        except (ProtocolError, UnicodeDecodeError):
            return False
        self._out += (frame_header(_FIN_CLOSE, len(payload)) + payload, b"")  # echo, then end the stream
        return True

    def _feed_websockets(self, data: memoryview, out: list[bytes]) -> None:
        protocol = self._websockets()
        protocol.receive_data(bytes(data))
        out.extend(self._payloads())
        self._drain()

    def receive_eof(self) -> list[bytes]:
        """The client's TCP stream ended (with or without a close frame)."""
        if self._eof_received:
            return []
        out: list[bytes] = []
        while self.backlogged and not self.client_done:  # the stream ended: no more turns to wait for
            out += self.receive_data(b"")
        self._eof_received = True
        self.backlogged = False
        self._buffer = bytearray()
        if self._closed is not None:
            return out  # the closing handshake is done already
        protocol = self._websockets()
        protocol.receive_eof()
        out += self._payloads()
        self._drain()
        return out

    def _payloads(self) -> list[bytes]:
        assert self._protocol is not None
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
        self._websockets().fail(code, reason)
        self._decoder = None
        self._failed = True
        self._buffer = bytearray()
        self._drain()

    def _drain(self) -> None:
        """websockets' output (pongs, close frames, the end of the stream) joins ours, in order."""
        if self._protocol is not None:
            self._out.extend(self._protocol.data_to_send())

    # -- target → client -------------------------------------------------

    def send_payload(self, data: bytes) -> bool:
        """Queue bytes from the target as one message to the client; False if it is closing."""
        if not self.is_open:
            return False
        if self.subprotocol == BASE64:
            is_text, payload = encode_for_client(self.subprotocol, data)
            first = _FIN_TEXT if is_text else _FIN_BINARY
        else:  # binary, the usual case: the payload as it came, without a call per message
            payload, first = data, _FIN_BINARY
        length = len(payload)
        if length < 126:
            self._out.append(bytes((first, length)) + payload)
        elif length < 1024:
            self._out.append(frame_header(first, length) + payload)
        else:  # no copy of a large payload: the relay writes the two together
            self._out += (frame_header(first, length), payload)
        return True

    def ping(self) -> None:
        """Queue a ping (the heartbeat); the client's pong goes to websockets, which expects none."""
        if not self.is_open:
            return
        if self._protocol is None:
            self._out.append(_PING)
        elif self._protocol.state is State.OPEN:
            self._protocol.send_ping(b"")
            self._drain()

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake, once."""
        if self.is_open:
            self._websockets().send_close(code, reason)
            self._drain()

    def data_to_send(self) -> list[bytes]:
        """Bytes for the client; an empty bytes object means: end the TCP stream."""
        out, self._out = self._out, []
        return out

    # -- state -----------------------------------------------------------

    @property
    def is_open(self) -> bool:
        if self._protocol is None:
            return self._closed is None
        return self._protocol.state is State.OPEN

    @property
    def client_done(self) -> bool:
        """No more client data will come: close frame received, failure, or EOF."""
        protocol = self._protocol
        return (self._eof_received or self._failed or self._closed is not None
                or (protocol is not None and (protocol.close_rcvd is not None or protocol.parser_exc is not None)))

    @property
    def close_code(self) -> int | None:
        if self._closed is not None:
            return self._closed.code
        if self._protocol is not None:
            close: Close | None = self._protocol.close_sent or self._protocol.close_rcvd
            if close is not None:
                return close.code
        if self._eof_received:
            return CloseCode.ABNORMAL
        return None

    @property
    def close_reason(self) -> str:
        if self._closed is not None:
            return self._closed.reason
        if self._protocol is None:
            return ""
        close = self._protocol.close_sent or self._protocol.close_rcvd
        return close.reason if close is not None else ""
