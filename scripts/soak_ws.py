"""The soak test's WebSocket client connection: cheap enough to hold 10 000 of.

One asyncio Protocol per connection, no streams and no general-purpose
WebSocket library: the request head is a constant, client frames come
pre-masked from `Payloads`, and the parser reads only what the relay sends
(unmasked binary frames, close, ping). websockify relays a byte stream, so an
echo may come back split across several frames: `expect()` checks the bytes
as they arrive, against the exact bytes sent.
"""
from __future__ import annotations

import asyncio
import random
import socket
import struct
from typing import Callable, cast

# RFC 6455 section 1.3's sample key and its accept value: the server does not
# track keys, so one constant request serves every connection.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = b"\x3a\x91\xc4\x5e"  # one fixed, non-zero key: the server must really unmask
NORMAL_CLOSURE = 1000


class SessionError(Exception):
    """What went wrong with one connection; `kind` is its tally in the report."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _mask(data: bytes, offset: int = 0) -> bytes:
    key = (MASK * (len(data) // 4 + 2))[offset % 4:offset % 4 + len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


def request_head(host: str, port: int) -> bytes:
    return (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: binary\r\n\r\n").encode()


def frame_header(opcode: int, size: int) -> bytes:
    """A client frame's header (FIN set, masked) followed by the mask key."""
    if size < 126:
        return bytes((0x80 | opcode, 0x80 | size)) + MASK
    if size < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big") + MASK
    return bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big") + MASK


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One whole client frame."""
    return frame_header(opcode, len(payload)) + _mask(payload)


CLOSE_FRAME = masked_frame(0x8, NORMAL_CLOSURE.to_bytes(2, "big"))


class Payloads:
    """Deterministic message bytes: slices of one seeded random buffer.

    The buffer is masked once; slices start on a multiple of 4 so a slice of
    the masked copy is exactly that message masked with MASK.
    """

    SPAN = 1 << 16

    def __init__(self, seed: int, max_size: int):
        self.plain = random.Random(seed).randbytes(self.SPAN + max_size)
        self.masked = _mask(self.plain)
        self.max_size = max_size

    def pick(self, rng: random.Random) -> tuple[int, int]:
        return 4 * rng.randrange(self.SPAN // 4), rng.randint(1, self.max_size)

    def frame(self, offset: int, size: int) -> bytes:
        return frame_header(0x2, size) + self.masked[offset:offset + size]

    def expected(self, offset: int, size: int) -> memoryview:
        return memoryview(self.plain)[offset:offset + size]


class WsConnection(asyncio.Protocol):
    """One client connection: handshake, echo checks, close in three styles."""

    def __init__(self, head: bytes, on_lost: Callable[["WsConnection"], None]):
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._head = head
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._upgraded = False
        self.opened: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()  # set when the socket is gone
        self.wake: asyncio.Future[None] | None = None  # an idle wait to cut short
        self.closing = False
        self.close_code: int | None = None
        self.failure: SessionError | None = None
        self._expected: memoryview | None = None
        self._got = 0
        self._echo: asyncio.Future[None] | None = None

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.write(self._head)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > 4096:
                    self._fail("open", f"no end to the response head: {bytes(buffer[:80])!r}")
                return
            head = bytes(buffer[:end])
            del buffer[:end + 4]
            if not head.startswith(b"HTTP/1.1 101 ") or _header(head, b"sec-websocket-accept") != ACCEPT:
                status = head.split(b"\r\n", 1)[0]
                self._fail("open", f"handshake refused: {status!r}")
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._parse()

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and self.failure is None:
            if not self.opened.done():
                self._fail("open", f"connection closed during the handshake ({exc or 'EOF'})")
            else:
                kind = "lost" if self._echo is not None else "dropped"
                self._fail(kind, f"connection closed by the server ({exc or 'EOF'}), close code {self.close_code}")
        if self._echo is not None and not self._echo.done():
            self._echo.set_exception(SessionError("lost", "connection closed before the echo came back"))
        if not self.opened.done():
            self.opened.set_exception(self.failure or SessionError("open", "connection closed"))
        self.finished.set_result(None)
        self._wake()
        self._on_lost(self)

    # -- frames from the server ----------------------------------------------------------

    def _parse(self) -> None:
        buffer = self._buffer
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            b0, b1 = buffer[pos], buffer[pos + 1]
            size = b1 & 0x7F
            start = pos + 2
            if size == 126:
                if end - pos < 4:
                    break
                size = int.from_bytes(buffer[pos + 2:pos + 4], "big")
                start = pos + 4
            elif size == 127:
                if end - pos < 10:
                    break
                size = int.from_bytes(buffer[pos + 2:pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                self._fail("protocol", "the server sent a masked frame")
                return
            if end - start < size:
                break
            pos = start + size
            self._frame(b0 & 0x0F, bytes(buffer[start:pos]))
            if self.failure is not None:
                return
        del buffer[:pos]

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode in (0x0, 0x2):
            self._data(payload)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if not self.closing:
                self._fail("dropped", f"the server closed the session: code {self.close_code} "
                                      f"{payload[2:].decode(errors='replace')!r}")
        elif opcode == 0x9 and self.transport is not None:
            self.transport.write(frame_header(0xA, len(payload)) + _mask(payload))
        elif opcode != 0xA:
            self._fail("protocol", f"unexpected frame opcode {opcode:#x}")

    def _data(self, payload: bytes) -> None:
        expected = self._expected
        got = self._got
        if expected is None or self._echo is None:
            self._fail("corrupt", f"{len(payload)} bytes arrived that were never sent")
            return
        if got + len(payload) > len(expected) or expected[got:got + len(payload)] != payload:
            where = got + next((i for i, (a, b) in enumerate(zip(payload, expected[got:])) if a != b),
                               len(expected) - got)
            self._fail("corrupt", f"echo of {len(expected)} bytes differs from what was sent at byte {where}")
            return
        self._got = got + len(payload)
        if self._got == len(expected):
            self._expected = None
            self._echo.set_result(None)

    # -- what the soak test does with it -------------------------------------------------

    async def echo(self, frame: bytes, expected: memoryview, timeout: float) -> None:
        """Send one message; return once exactly its bytes came back."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._expected, self._got, self._echo = expected, 0, waiter
        self.transport.write(frame)
        timer = loop.call_later(timeout, _expire, waiter,
                                lambda: SessionError("lost", f"{len(expected) - self._got} of {len(expected)} "
                                                            f"bytes not echoed within {timeout:g}s"))
        try:
            await waiter
        finally:
            timer.cancel()
            self._echo = None

    async def sleep(self, seconds: float) -> None:
        """Wait, unless the connection ends or `wake_up()` is called first."""
        loop = asyncio.get_running_loop()
        self.wake = loop.create_future()
        timer = loop.call_later(seconds, self._wake)
        try:
            await self.wake
        finally:
            timer.cancel()
            self.wake = None

    def wake_up(self) -> None:
        self._wake()

    async def close(self, style: str, timeout: float) -> None:
        """`clean`: close frame and wait for the server's; `fin`: TCP close without a
        close frame; `rst`: reset the connection."""
        assert self.transport is not None
        self.closing = True
        if style == "clean":
            self.transport.write(CLOSE_FRAME)
            try:
                await asyncio.wait_for(asyncio.shield(self.finished), timeout)
            except asyncio.TimeoutError:
                self.transport.abort()
                raise SessionError("close", f"clean close not finished within {timeout:g}s") from None
            if self.close_code != NORMAL_CLOSURE:
                raise SessionError("close", f"the server answered a close with code {self.close_code}")
            return
        if style == "rst":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        else:
            self.transport.close()
        await self.finished

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def _fail(self, kind: str, message: str) -> None:
        if self.failure is not None:
            return
        self.failure = SessionError(kind, message)
        if self._echo is not None and not self._echo.done():
            self._echo.set_exception(self.failure)
        if not self.opened.done():
            self.opened.set_exception(self.failure)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


def _header(head: bytes, name: bytes) -> bytes | None:
    start = head.lower().find(b"\r\n" + name + b":")
    if start < 0:
        return None
    value = head[start + len(name) + 3:].split(b"\r\n", 1)[0]
    return value.strip()


def _expire(waiter: asyncio.Future[None], error: Callable[[], SessionError]) -> None:
    if not waiter.done():
        waiter.set_exception(error())
