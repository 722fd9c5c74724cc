"""In-memory stand-ins for the relay's and the server's I/O: a transport that records
what is done to it, a target connector, and the browser's end of a WebSocket.

Unit tests drive the real Relay and ClientConnection with these inside a real
event loop, with no sockets: every write, pause and close can be asserted.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Awaitable, Callable, TypeVar

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from websockify.protocol.handshake import perform_handshake
from websockify.protocol.http import RequestReader
from websockify.protocol.websocket import WebSocketSession

T = TypeVar("T")


class FakeTransport(asyncio.Transport):
    """A transport that keeps what is written to it and counts it as buffered until
    the test calls `drain()`, as if the peer had read it.

    Flow control works as in asyncio's transports: a write that takes the buffer
    above the high-water mark calls the protocol's pause_writing(), a drain down
    to the low-water mark its resume_writing(). close() and abort() call the
    protocol's connection_lost() on the next loop turn. As with uvloop's
    transports, a write between close() and connection_lost() is dropped, and a
    write after connection_lost() raises (the stdlib's transports drop it), so
    code that writes to a leg it has seen lost fails the test.
    """

    def __init__(self, protocol: asyncio.BaseProtocol | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)
        self._protocol = protocol
        self.written = bytearray()
        self.buffered = 0
        self.high, self.low = 64 * 1024, 16 * 1024
        self.reading = True
        self.eof_written = False
        self.closed = False  # close() or abort() was called
        self.aborted = False
        self.lost = False  # connection_lost() was delivered
        self.dropped = 0  # bytes written between close() and connection_lost()
        self._writing_paused = False

    # -- asyncio.BaseTransport ---------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lost)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def _lost(self) -> None:
        try:
            if self._protocol is not None:
                self._protocol.connection_lost(None)
        finally:
            self.lost = True

    # -- reading -----------------------------------------------------------

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    # -- writing -----------------------------------------------------------

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = 64 * 1024 if high is None else high
        self.low = self.high // 4 if low is None else low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.low, self.high

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: "bytes | bytearray | memoryview") -> None:
        if self.lost:
            raise RuntimeError("write to a transport whose connection was lost")
        if self.closed:
            self.dropped += len(data)
            return
        if self.eof_written:
            raise RuntimeError("write after write_eof()")
        self.written += data
        self.buffered += len(data)
        if not self._writing_paused and self.buffered > self.high and self._protocol is not None:
            self._writing_paused = True
            self._protocol.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self.lost:
            raise RuntimeError("write_eof() on a transport whose connection was lost")
        self.eof_written = True

    def drain(self, count: int | None = None) -> None:
        """The peer reads `count` buffered bytes (all by default)."""
        self.buffered -= self.buffered if count is None else min(count, self.buffered)
        if self._writing_paused and self.buffered <= self.low and self._protocol is not None:
            self._writing_paused = False
            self._protocol.resume_writing()


class FakeConnector:
    """A target that is reached (a FakeTransport), refused (`fail`), or reached only
    when the test opens `gate`."""

    description = "fake-target"

    def __init__(self, fail: BaseException | None = None, gated: bool = False) -> None:
        self._fail = fail
        self._gated = gated
        self.gate: asyncio.Future[None] | None = None
        self.transport: FakeTransport | None = None
        self.protocol: asyncio.Protocol | None = None
        self.attempts = 0
        self.settled = False  # the attempt has succeeded or failed

    async def connect(self, factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
        self.attempts += 1
        try:
            if self._gated:
                self.gate = asyncio.get_running_loop().create_future()
                await self.gate
            if self._fail is not None:
                raise self._fail
            self.protocol = factory()
            self.transport = FakeTransport(self.protocol)
            self.protocol.connection_made(self.transport)
            return self.transport
        finally:
            self.settled = True


class HangupSocket:
    """What `get_extra_info("socket")` gives for a client whose hang-up poll() must see:
    the read end of a pipe, which reports POLLHUP once `hang_up()` closes the write end."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    def fileno(self) -> int:
        return self._read

    def hang_up(self) -> None:
        if self._write >= 0:
            os.close(self._write)
            self._write = -1

    def close(self) -> None:
        self.hang_up()
        os.close(self._read)


# -- the WebSocket, both ends --------------------------------------------------------

UPGRADE = (b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def upgrade_request(*extra: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    head = UPGRADE.replace(b"GET / HTTP/1.1", f"{method} / {version}".encode())
    return head + "".join(f"{line}\r\n" for line in extra).encode("latin-1") + b"\r\n"


def open_session(subprotocol: str = "binary", max_message_bytes: int = 1 << 20) -> WebSocketSession:
    """A server session after a real opening handshake."""
    head = RequestReader().feed(upgrade_request(f"Sec-WebSocket-Protocol: {subprotocol}"))
    assert head is not None
    result = perform_handshake(head.target, head.headers, max_message_bytes)
    assert result.accepted, result.error
    return WebSocketSession(result.subprotocol, max_message_bytes)


class Browser:
    """The client's end of an open WebSocket (websockets' Sans-I/O ClientProtocol):
    masked frames to send, and the frames a transport received, parsed."""

    def __init__(self) -> None:
        self._protocol = ClientProtocol(parse_uri("ws://test/"), state=State.OPEN, max_size=None)
        self._seen = 0

    @staticmethod
    def frame(opcode: Opcode, payload: bytes = b"", fin: bool = True) -> bytes:
        return Frame(opcode, payload, fin).serialize(mask=True)

    def binary(self, payload: bytes) -> bytes:
        return self.frame(Opcode.BINARY, payload)

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        return self.frame(Opcode.CLOSE, code.to_bytes(2, "big") + reason.encode())

    def skip_http_head(self, transport: FakeTransport) -> None:
        """Frames start after the 101 response written to `transport`."""
        self._seen = transport.written.index(b"\r\n\r\n") + 4

    def received(self, transport: FakeTransport) -> list[Frame]:
        """The frames written to `transport` since the last call."""
        new = bytes(transport.written[self._seen:])
        self._seen = len(transport.written)
        self._protocol.receive_data(new)
        return [event for event in self._protocol.events_received() if isinstance(event, Frame)]


def close_of(frame: Frame) -> tuple[int, str]:
    assert frame.opcode is Opcode.CLOSE, frame
    return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode()


# -- running a scenario -----------------------------------------------------------

def run(scenario: Callable[[], Awaitable[T]], seconds: float = 10) -> T:
    """Run `scenario()` in a new event loop; an exception in any callback fails the test
    (asyncio would only log it)."""
    errors: list[dict[str, Any]] = []

    async def main() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        async with asyncio.timeout(seconds):
            return await scenario()

    result = asyncio.run(main())
    assert not errors, "errors in loop callbacks: " + "; ".join(
        f"{c.get('message')}: {c.get('exception')!r}" for c in errors)
    return result


async def turns(count: int = 1) -> None:
    """Let the loop run `count` times round (callbacks scheduled with call_soon run)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def turns_until(condition: Callable[[], object], what: str, limit: int = 10000) -> int:
    """Loop turns until `condition()` is true; how many it took."""
    for count in range(limit):
        if condition():
            return count
        await asyncio.sleep(0)
    raise AssertionError(f"{what}: not after {limit} loop turns")


async def wait_until(condition: Callable[[], object], what: str, seconds: float = 5) -> None:
    """For conditions that wait on a timer: poll `condition()` within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        await asyncio.sleep(0.005)
