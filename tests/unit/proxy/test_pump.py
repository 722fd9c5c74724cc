"""The relay with in-memory transports: flow control, fairness and closing, turn by turn."""
from __future__ import annotations

import asyncio
import logging

from fakes import (
    Browser,
    FakeConnector,
    FakeTransport,
    HangupSocket,
    close_of,
    open_session,
    run,
    turns,
    turns_until,
    wait_until,
)
from websockets.frames import Opcode

from websockify.errors import TargetUnavailable
from websockify.protocol.websocket import FRAMES_PER_CALL
from websockify.proxy.pump import Relay

KIB = 1024
MARK = 64 * KIB  # the write-buffer high-water mark of both legs here


class ClientEvents(asyncio.Protocol):
    """What the server's ClientConnection forwards to its relay once the WebSocket is open."""

    relay: Relay

    def data_received(self, data: bytes) -> None:
        # As ClientConnection hands them over: a view of a read buffer the next read overwrites.
        buffer = bytearray(data)
        with memoryview(buffer) as view:
            self.relay.client_data(view)
        buffer[:] = b"\xee" * len(buffer)

    def pause_writing(self) -> None:
        self.relay.client_write_paused()

    def resume_writing(self) -> None:
        self.relay.client_write_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.client_lost()


class Session:
    """One relay between a fake client transport and a fake target."""

    def __init__(self, connector: FakeConnector | None = None, close_timeout_s: float = 5.0,
                 client_socket: HangupSocket | None = None, stall_timeout_s: float | None = None,
                 max_message_bytes: int = 1 << 20) -> None:
        self.events = ClientEvents()
        self.client = FakeTransport(self.events, {"socket": client_socket} if client_socket else None)
        self.connector = connector or FakeConnector()
        self.browser = Browser()
        self.relay = Relay(self.client, open_session(max_message_bytes=max_message_bytes), self.connector,
                           peer="test-peer", write_buffer_bytes=MARK, close_timeout_s=close_timeout_s,
                           stall_timeout_s=stall_timeout_s)
        self.events.relay = self.relay

    async def start(self) -> None:
        self.relay.start()
        await turns_until(lambda: self.connector.settled, "the connect")
        await turns(1)  # the relay sees the result

    @property
    def target(self) -> FakeTransport:
        assert self.connector.transport is not None
        return self.connector.transport

    def from_client(self, *frames: bytes) -> None:
        self.events.data_received(b"".join(frames))

    def from_target(self, data: bytes) -> None:
        assert self.connector.protocol is not None
        self.connector.protocol.data_received(data)

    def frames(self) -> list:
        return self.browser.received(self.client)


def test_bytes_flow_both_ways_as_frames_and_payloads():
    async def scenario():
        s = Session()
        await s.start()
        s.from_client(s.browser.binary(b"up 1"), s.browser.binary(b"up 2"))
        assert bytes(s.target.written) == b"up 1up 2"
        s.from_target(b"down")
        assert [(f.opcode, f.data) for f in s.frames()] == [(Opcode.BINARY, b"down")]
        assert (s.relay.bytes_up, s.relay.bytes_down) == (8, 4)
    run(scenario)


def test_client_data_before_the_target_is_up_waits_and_keeps_its_order():
    async def scenario():
        s = Session(FakeConnector(gated=True))
        s.relay.start()
        await turns_until(lambda: s.connector.gate is not None, "the connect attempt")
        assert not s.client.reading  # nothing more is read until the target is there
        s.from_client(s.browser.binary(b"first "), s.browser.binary(b"second"))
        s.connector.gate.set_result(None)
        await turns_until(lambda: s.connector.transport and len(s.target.written) == 12, "the waiting bytes")
        assert bytes(s.target.written) == b"first second"
        assert s.client.reading
    run(scenario)


def test_a_full_client_pauses_the_target_and_the_client_until_below_the_low_mark():
    async def scenario():
        s = Session()
        await s.start()
        s.from_target(b"x" * (MARK // 2))
        assert s.target.reading and s.client.reading
        s.from_target(b"y" * (MARK // 2 + 100))  # over the mark
        assert not s.target.reading
        assert not s.client.reading  # its pings would make pongs it does not read either
        s.client.drain(s.client.buffered - MARK // 4 - 1)  # just above the low mark
        assert not s.target.reading and not s.client.reading
        s.client.drain(1)
        assert s.target.reading and s.client.reading
        assert b"".join(f.data for f in s.frames()) == b"x" * (MARK // 2) + b"y" * (MARK // 2 + 100)
    run(scenario)


def test_a_full_target_pauses_the_client_and_keeps_its_bytes_until_resumed():
    async def scenario():
        s = Session()
        await s.start()
        s.from_client(s.browser.binary(b"a" * (MARK + 1)))
        await turns_until(lambda: len(s.target.written) == MARK + 1, "the first message")
        assert not s.client.reading
        # Bytes the transport read before the pause took effect wait, unparsed.
        s.from_client(s.browser.binary(b"b" * 1000))
        assert bytes(s.target.written) == b"a" * (MARK + 1)
        s.target.drain(MARK - MARK // 4)  # still above the low mark
        await turns(3)
        assert not s.client.reading and len(s.target.written) == MARK + 1
        s.target.drain()
        await turns_until(lambda: s.client.reading, "client reads to resume")
        assert bytes(s.target.written) == b"a" * (MARK + 1) + b"b" * 1000
    run(scenario)


def test_a_large_read_of_tiny_frames_is_parsed_over_several_loop_turns():
    """Fairness: 256 KiB of one-byte frames is not parsed in one go; the client is not
    read meanwhile, and every payload arrives in order."""
    async def scenario():
        s = Session()
        await s.start()
        payloads = [bytes([i % 251]) for i in range(256 * KIB // 7)]  # a 1-byte frame is 7 bytes
        s.from_client(*(s.browser.binary(p) for p in payloads))
        assert len(s.target.written) < len(payloads)
        assert not s.client.reading
        spent = await turns_until(lambda: len(s.target.written) == len(payloads), "every payload")
        assert spent >= 2
        assert bytes(s.target.written) == b"".join(payloads)
        await turns_until(lambda: s.client.reading, "client reads to resume")
    run(scenario)


def test_a_client_that_does_not_read_its_pongs_stops_being_read():
    """A ping flood: the pongs fill the client's buffer, then its pings are left unread."""
    async def scenario():
        s = Session()
        await s.start()
        ping = s.browser.frame(Opcode.PING, b"p" * 125)
        flood = ping * (256 * KIB // len(ping))
        s.from_client(flood)
        await turns(10)
        assert not s.client.reading
        # At most the mark plus the pongs for one budget of pings (127 bytes each).
        assert MARK < s.client.buffered <= MARK + FRAMES_PER_CALL * 127
        pongs = s.frames()
        assert len(pongs) < flood.count(ping)
        for _ in range(1000):  # the client now reads its pongs as they come
            if s.client.reading:
                break
            s.client.drain()
            await turns(1)
        pongs += s.frames()
        assert s.client.reading
        assert [(f.opcode, f.data) for f in pongs] == [(Opcode.PONG, b"p" * 125)] * flood.count(ping)
        assert s.target.written == b""
    run(scenario)


def test_client_close_gives_the_target_eof_after_every_byte():
    async def scenario():
        s = Session()
        await s.start()
        s.from_client(s.browser.binary(b"one "), s.browser.binary(b"two"), s.browser.close(1000, "bye"))
        assert bytes(s.target.written) == b"one two" and s.target.eof_written
        assert not s.target.closed  # the target may still answer until it closes
        [reply] = s.frames()
        assert close_of(reply) == (1000, "bye")
        assert s.client.eof_written  # our side of the closing handshake is done
    run(scenario)


def test_client_vanishing_mid_stream_gives_the_target_its_bytes_then_eof():
    async def scenario():
        s = Session()
        await s.start()
        s.from_client(s.browser.binary(b"last words"))
        s.client.abort()
        await turns_until(lambda: s.target.eof_written, "target EOF")
        assert bytes(s.target.written) == b"last words"
    run(scenario)


def test_target_eof_closes_the_client_with_1000_after_its_data():
    async def scenario():
        s = Session()
        await s.start()
        s.from_target(b"final")
        assert s.connector.protocol is not None
        assert s.connector.protocol.eof_received() is True  # the target may still read
        frames = s.frames()
        assert [f.data for f in frames[:-1]] == [b"final"]
        assert close_of(frames[-1]) == (1000, "Target closed")
        s.from_client(s.browser.close(1000))
        assert s.client.eof_written
    run(scenario)


def test_refused_target_closes_the_client_with_1011(caplog):
    async def scenario():
        s = Session(FakeConnector(fail=TargetUnavailable("127.0.0.1:1: Connection refused")))
        s.from_client(s.browser.binary(b"never delivered"))
        await s.start()
        await turns(2)
        [close] = s.frames()
        assert close_of(close) == (1011, "Failed to connect to downstream server")
        assert s.client.reading  # read until the client answers the close
    with caplog.at_level(logging.WARNING):
        run(scenario)
    assert "target unreachable: 127.0.0.1:1: Connection refused" in caplog.text


def test_an_unexpected_connect_error_is_still_a_1011_close(caplog):
    async def scenario():
        s = Session(FakeConnector(fail=RuntimeError("bug")))
        await s.start()
        await turns(2)
        assert close_of(s.frames()[-1])[0] == 1011
    with caplog.at_level(logging.WARNING):
        run(scenario)
    assert "connecting to the target failed unexpectedly" in caplog.text


def test_shutdown_closes_the_client_with_1001_and_drops_the_target():
    async def scenario():
        s = Session()
        await s.start()
        s.relay.shutdown()
        assert close_of(s.frames()[-1]) == (1001, "Server shutting down")
        assert s.target.closed
    run(scenario)


def test_a_client_leaving_a_target_that_does_not_read_ends_the_session(caplog):
    """The target stopped reading, the client's further bytes wait unparsed, then the client
    hangs up: the relay gives the target a bounded time, then drops both legs without
    writing the waiting bytes to the target it has aborted."""
    hangup = HangupSocket()

    async def scenario():
        s = Session(close_timeout_s=0.05, client_socket=hangup)
        await s.start()
        s.from_client(s.browser.binary(b"a" * (MARK + 1)))
        await turns_until(lambda: len(s.target.written) == MARK + 1, "the target to be full")
        s.from_client(s.browser.binary(b"b" * 1000))  # waits in the backlog
        hangup.hang_up()
        await wait_until(lambda: s.target.lost and s.client.lost, "both legs dropped")
        assert s.target.aborted and s.client.aborted
        assert bytes(s.target.written) == b"a" * (MARK + 1)
    try:
        with caplog.at_level(logging.INFO):
            run(scenario)
    finally:
        hangup.close()
    assert f"error=target did not read the last {MARK + 1} bytes within 0.05s" in caplog.text


# -- a client that broke the protocol (issue 17, item 13) ---------------------------

def test_a_client_failing_the_protocol_is_not_read_after_the_close_and_is_cut_once_it_has_it():
    async def scenario():
        s = Session(max_message_bytes=1000)
        await s.start()
        s.from_client(s.browser.binary(b"x" * 1001))
        assert close_of(s.frames()[-1])[0] == 1009
        assert s.client.eof_written and not s.client.reading  # nothing more is read
        s.from_client(b"\x00" * 5000)  # read before the pause took effect: never parsed
        s.relay.target_lost(None)  # the target going does not resume reading either
        assert not s.client.reading
        await asyncio.sleep(0.2)
        assert not s.client.closed  # the close frame has not reached the client yet
        s.client.drain()
        await wait_until(lambda: s.client.lost, "the client cut once it has the close frame", 1)
        assert s.client.aborted
    run(scenario)


def test_a_client_closing_normally_is_still_read_until_its_eof():
    async def scenario():
        s = Session()
        await s.start()
        s.from_client(s.browser.close(1000))
        assert s.client.eof_written and s.client.reading
    run(scenario)


# -- stalled sessions (issue 17, item 4) ---------------------------------------------

def test_a_target_that_does_not_read_while_the_client_closes_is_cut_after_the_stall_timeout(caplog):
    async def scenario():
        s = Session(stall_timeout_s=0.2)
        await s.start()
        s.from_client(s.browser.binary(b"a" * (MARK + 1)))
        await turns_until(lambda: not s.client.reading, "client reads paused: the target is full")
        s.from_client(s.browser.binary(b"b" * 1000), s.browser.close(1000))  # wait behind the full target
        started = asyncio.get_running_loop().time()
        await wait_until(lambda: s.target.lost and s.client.lost, "both legs dropped", 2)
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert s.target.aborted and s.client.aborted
    with caplog.at_level(logging.INFO):
        run(scenario)
    assert "stalled: the target does not read" in caplog.text
    assert "error=stalled: the target does not read" in caplog.text


def test_a_client_that_does_not_read_is_cut_after_the_stall_timeout(caplog):
    async def scenario():
        s = Session(stall_timeout_s=0.2)
        await s.start()
        while not s.client.is_closing() and s.client.get_write_buffer_size() <= MARK:
            s.from_target(b"d" * 16 * KIB)
        assert not s.target.reading  # flow control: the target is not read
        await wait_until(lambda: s.target.lost and s.client.lost, "both legs dropped", 2)
        assert s.client.aborted
    with caplog.at_level(logging.INFO):
        run(scenario)
    assert "stalled: the client does not read" in caplog.text


def test_a_slow_client_that_reads_a_little_at_a_time_is_not_cut():
    async def scenario():
        s = Session(stall_timeout_s=0.2)
        await s.start()
        while s.client.get_write_buffer_size() <= MARK:
            s.from_target(b"d" * 16 * KIB)
        for _ in range(12):  # 0.6 s: three stall timeouts, but it reads a little each 50 ms
            await asyncio.sleep(0.05)
            s.client.drain(100)
        assert not s.client.closed and not s.target.closed
    run(scenario)


def test_an_idle_session_is_never_cut_and_arms_no_timer():
    async def scenario():
        s = Session(stall_timeout_s=0.05)
        await s.start()
        s.from_client(s.browser.binary(b"hello"))
        s.from_target(b"world")
        s.client.drain()
        s.target.drain()
        await asyncio.sleep(0.3)  # six stall timeouts with nothing pending
        assert not s.client.closed and not s.target.closed
        assert not s.relay._stall.armed
    run(scenario)


def test_the_stall_watch_stops_once_flow_resumes():
    async def scenario():
        s = Session(stall_timeout_s=0.2)
        await s.start()
        s.from_client(s.browser.binary(b"a" * (MARK + 1)))
        await turns_until(lambda: not s.client.reading, "the target is full")
        assert s.relay._stall.armed
        s.target.drain()
        await turns_until(lambda: s.client.reading, "reading resumed")
        assert not s.relay._stall.armed
        await asyncio.sleep(0.4)
        assert not s.client.closed
    run(scenario)
