"""The relay between one WebSocket client and one target, with flow control on both legs
(its marks, fairness and memory bound: flow.py).

Closing: the target's EOF closes the WebSocket with 1000 after everything it
sent has been queued to the client; the client's close frame (or its vanishing)
half-closes the target after every byte the client sent was written to it (a TLS
target, or one that has ended its side already, is closed instead). A
peer that does not finish its side within `close_timeout_s` is cut off: the
client that does not answer our close, and the target that does not take the
client's last bytes once the client is gone. A client that broke the protocol
(1002, 1007, 1008, 1009) is not read after our close frame, and is cut as soon as
that frame has reached it (the client's timers: linger.py).

Stalls: a session blocked by flow control with nothing moving is cut (flow.py); TCP
keepalive and TCP_USER_TIMEOUT on both legs (sockopts.py) let the kernel find dead peers.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ..errors import CloseCode, TargetUnavailable
from ..protocol.recording import CLIENT_TO_TARGET, TARGET_TO_CLIENT
from ..protocol.websocket import RelaySession
from ..sockopts import enable_keepalive, unsent_bytes
from .fairness import fair_queue
from .flow import BUDGET_ONLY, FLOW_BLOCKERS, Blocker, StallWatch, cancel, choose_stall_timeout_s, hung_up
from .heartbeat import Heartbeat
from .linger import ClientLinger
from .memory_trim import heap_trimmer
from .recorder import SessionRecording
from .session_report import SessionFacts, SessionReport
from .target import Connector, TargetProtocol

log = logging.getLogger(__name__)
traffic_log = logging.getLogger("websockify.traffic")


# Close codes that blame the client's input (the session failed): after the close
# frame, what the client sends is discarded, so it is not read at all.
_CLIENT_FAULTS = frozenset({CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA, CloseCode.POLICY_VIOLATION,
                            CloseCode.MESSAGE_TOO_BIG})


class Relay:
    # One per session, thousands at once: no per-instance dict (past 30 attributes
    # CPython stops sharing its keys, about 1 KB more per session).
    __slots__ = ("_client", "_client_full", "_client_gone", "_client_linger", "_client_read_blockers",
                 "_close_timeout_s", "_connect_task", "_connector", "_done", "_drain_scheduled", "_eof_pending",
                 "_failure", "_fair",
                 "_heartbeat", "_held", "_loop", "_on_end", "_peer", "_pending", "_recording", "_report", "_session",
                 "_stall", "_started", "_target",
                 "_target_eof_received", "_target_eof_sent", "_target_gone", "_target_linger", "_traffic",
                 "_write_buffer_bytes", "bytes_down", "bytes_up")

    def __init__(
        self,
        client: asyncio.Transport,
        session: RelaySession,
        connector: Connector,
        *,
        peer: str,
        write_buffer_bytes: int,
        close_timeout_s: float,
        recording: SessionRecording | None = None,
        heartbeat_s: float = 0.0,
        on_end: Callable[[], None] | None = None,
        stall_timeout_s: float | None = None,
        facts: SessionFacts | None = None,
    ):
        """`stall_timeout_s`: see the module's docstring; None for the default, 0 for none.
        `facts`: the client, for the session's end (session_report.py); by default, `peer`."""
        self._loop = asyncio.get_running_loop()
        self._client = client
        self._session = session
        self._connector = connector
        self._peer = peer
        self._write_buffer_bytes = write_buffer_bytes
        self._close_timeout_s = close_timeout_s
        self._recording = recording
        self._target: asyncio.Transport | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._pending: list[bytes] = []  # client payloads that came before the target was up
        self._held: list[bytes] = []  # client bytes that came while reading was paused
        self._drain_scheduled = False
        self._eof_pending = False  # the client's stream ended with frames unread: they are read first
        self._fair = fair_queue(self._loop)  # the loop's budget for unread frames, shared by all sessions
        self._client_read_blockers: set[Blocker] = set()
        self._client_full = False  # the client's write buffer is over the mark: target reads paused
        self._client_gone = False
        self._target_gone = False
        self._target_eof_sent = False
        self._target_eof_received = False
        self._client_linger = ClientLinger(self._loop, client, close_timeout_s)
        self._target_linger: asyncio.TimerHandle | None = None
        self._stall = StallWatch(self._loop, self, choose_stall_timeout_s(stall_timeout_s, heartbeat_s), close_timeout_s)
        self._failure: str | None = None
        self._done = False
        self._started = time.monotonic()
        self._on_end = on_end
        self._traffic = traffic_log.isEnabledFor(logging.INFO)
        self._heartbeat = (Heartbeat(heartbeat_s, self._ping, self._client_dead,
                                     paused=lambda: bool(self._client_read_blockers)) if heartbeat_s else None)
        self.bytes_up = 0
        self.bytes_down = 0
        client.set_write_buffer_limits(high=write_buffer_bytes)  # keepalive: set on the listener
        self._report = SessionReport(facts or SessionFacts(peer, peer), self)  # last: it counts the session open

    def start(self, leftover: bytes = b"") -> None:
        self.block_client_reads(Blocker.CONNECTING)
        if leftover:
            self.client_data(leftover)
        self._connect_task = self._loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            transport = await self._connector.connect(lambda: TargetProtocol(self))
        except Exception as exc:  # every failure must reach the client as a close code
            if not isinstance(exc, TargetUnavailable):
                log.exception("%s: connecting to the target failed unexpectedly", self._peer)
                exc = TargetUnavailable(f"unexpected error: {exc!r}")
            self._failure = str(exc)
            log.warning("%s: target unreachable: %s", self._peer, exc)
            self._target_gone = True
            self._close_client(exc.close_code, exc.close_reason)
            self._read_client_freely()
            self._maybe_done()
            return
        finally:
            self._connect_task = None  # nothing to cancel now; a finished task would stay with the session
        if self._client_gone or self._target_gone:
            transport.abort()
            return
        self._target = transport
        transport.set_write_buffer_limits(high=self._write_buffer_bytes)
        enable_keepalive(transport)
        if self._pending:
            transport.writelines(self._pending)
            self._pending.clear()
        if self._client_full:
            transport.pause_reading()
        if self._session.client_done:
            self._end_target_writes()
        self.unblock_client_reads(Blocker.CONNECTING)

    # -- client events ---------------------------------------------------

    def client_data(self, data: "bytes | memoryview") -> None:
        """Client bytes, possibly a view of a read buffer reused for the next read: used
        before returning (the session copies what it keeps), never kept."""
        if self._heartbeat is not None:
            self._heartbeat.heard()
        if self._client_read_blockers or self._held:  # read before a pause took effect: its turn comes
            self._held.append(bytes(data))  # a view of a reused read buffer: keep a copy
            return
        self._parse(data)
        if self._session.backlogged:
            self._schedule_drain()  # the session holds unread frames: no more bytes for now

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled and self._client_read_blockers <= BUDGET_ONLY:
            self.block_client_reads(Blocker.BUDGET)  # nothing new until the backlog is read
            self._drain_scheduled = True
            self._fair.enqueue(self)  # its next slice comes in turn with every backlogged session's

    def drain_backlog(self) -> None:
        """The session's next slice of frames (fairness.py), unless the target filled up meanwhile."""
        self._drain_scheduled = False
        if self._eof_pending:
            self._drain_after_eof()
            return
        if self._client_gone or not self._client_read_blockers <= BUDGET_ONLY:
            return
        if self._session.backlogged or self._held:
            held, self._held = b"".join(self._held), []
            self._parse(held)
        if self._session.backlogged:
            self._schedule_drain()
        else:
            self.unblock_client_reads(Blocker.BUDGET)

    def _parse(self, data: "bytes | memoryview") -> None:
        session = self._session
        payloads = session.receive_data(data)
        if payloads:
            self._deliver(payloads)
        if not self._client_gone:
            chunks = session.data_to_send()
            if chunks:  # most data frames make no reply
                self._write_client(chunks)
        if session.client_done:
            self._end_target_writes()

    def client_eof(self) -> None:
        if self._eof_pending:
            return
        if self._held or self._session.backlogged:
            # Frames are still unread: read in turn, as any backlog (flooders leaving at once
            # would hold the loop for seconds), unheld by flow control (one read at most).
            self._eof_pending = True
            if not self._drain_scheduled:
                self._drain_scheduled = True
                self._fair.enqueue(self)
            return
        payloads = self._session.receive_eof()
        if payloads:
            self._deliver(payloads)
        self._flush_client()
        self._end_target_writes()

    def _drain_after_eof(self) -> None:
        """One slice of what a client that has ended its stream left unread; then the end."""
        if self._held:
            held, self._held = b"".join(self._held), []
            self._parse(held)
        elif self._session.backlogged:
            self._parse(b"")
        if self._session.backlogged:
            self._drain_scheduled = True
            self._fair.enqueue(self)
            return
        self._eof_pending = False
        self.client_eof()
        if self._client_gone:
            self.client_lost()  # what it left until the backlog was read

    def client_lost(self) -> None:
        self._client_gone = True  # nothing may be written to it any more
        if not self._session.client_done:
            self.client_eof()
        self._client_linger.cancel()
        self._stall.disarm()
        if self._eof_pending:
            return  # the target's EOF follows the backlog (_drain_after_eof)
        self._end_target_writes()
        self._maybe_done()

    def _deliver(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            self.bytes_up += len(payload)
            if self._recording is not None:
                self._recording.record(CLIENT_TO_TARGET, payload)
            if self._traffic:
                traffic_log.info("%s: client > target %d bytes", self._peer, len(payload))
        if self._target is not None and not self._target_eof_sent and not self._target_gone:
            if len(payloads) == 1:
                self._target.write(payloads[0])
            else:
                self._target.writelines(payloads)
        elif self._target is None and not self._target_gone:
            self._pending.extend(payloads)

    def _flush_client(self) -> None:
        if not self._client_gone:
            self._write_client(self._session.data_to_send())

    def _write_client(self, chunks: list[bytes]) -> None:
        if len(chunks) == 1 and chunks[0]:
            self._client.write(chunks[0])
            return
        end = chunks.index(b"") if b"" in chunks else len(chunks)
        if end:
            self._client.writelines(chunks[:end])  # one system call for a header and its payload
        for chunk in chunks[end:]:
            if chunk:
                self._client.write(chunk)
                continue
            # The closing handshake is done (or failed): end our side of the
            # TCP stream and give the client a bounded time to end its own.
            if self._client.can_write_eof():
                self._client.write_eof()
                if self._session.close_code in _CLIENT_FAULTS:
                    self._stop_reading_failed_client()
                else:
                    self._start_client_linger()
            else:
                self._client.close()

    def _stop_reading_failed_client(self) -> None:
        """The client broke the protocol and has our close frame and our FIN: read
        nothing more (a flooding client would otherwise be read and discarded until
        the close timeout) and cut the connection once the close frame has reached
        it, or when the close timeout finds it not reading that either."""
        self._client_read_blockers.add(Blocker.FAILED)  # never removed: no resume can follow
        self._client.pause_reading()
        self._held.clear()
        self._client_linger.start_failed()

    def _close_client(self, code: int, reason: str) -> None:
        """Start the closing handshake; a client that never answers is cut off."""
        self._session.close(code, reason)
        self._flush_client()
        self._start_client_linger()

    def _start_client_linger(self) -> None:
        if not self._client_gone:
            self._client_linger.start()  # linger.py

    def _ping(self) -> None:
        self._session.ping()
        self._flush_client()

    def _client_dead(self) -> None:
        log.info("%s: no answer to a heartbeat ping: dropping the client", self._peer)
        self._failure = "heartbeat: the client did not answer"
        self._client.abort()

    # -- target events ---------------------------------------------------

    def target_data(self, data: bytes) -> None:
        session = self._session
        if not session.send_payload(data):
            return  # the client is closing; nothing more can reach it
        self.bytes_down += len(data)
        if self._recording is not None:
            self._recording.record(TARGET_TO_CLIENT, data)
        if self._traffic:
            traffic_log.info("%s: client < target %d bytes", self._peer, len(data))
        if not self._client_gone:
            chunks = session.data_to_send()
            if len(chunks) == 1 and chunks[0]:
                self._client.write(chunks[0])  # one message: the usual case, without a call more
            else:
                self._write_client(chunks)
        else:
            session.data_to_send()  # for no one: kept, it would grow while a backlog is read (client_eof)

    def target_eof(self) -> bool:
        self._target_eof_received = True
        self._close_client(CloseCode.NORMAL, "Target closed")
        # Keep the transport open: the target may still read what the client sends
        # (a TLS transport cannot be half-open: asyncio closes it whatever we say).
        tls = self._target is not None and self._target.get_extra_info("ssl_object") is not None
        return not self._session.client_done and not tls

    def target_lost(self, exc: Exception | None) -> None:
        self._target_gone = True
        cancel(self._target_linger)
        self._stall.disarm()
        if exc is not None and self._session.is_open:
            self._failure = f"target connection lost: {exc}"
            self._close_client(CloseCode.INTERNAL_ERROR, "Target connection lost")
        else:
            self._close_client(CloseCode.NORMAL, "Target closed")
        self._read_client_freely()
        self._maybe_done()

    def _end_target_writes(self) -> None:
        """The client sends nothing more: let the target see EOF after the last byte."""
        if self._target is None:
            if self._client_gone and self._connect_task is not None:
                self._connect_task.cancel()
                self._target_gone = True
                self._maybe_done()
            return
        if self._target_eof_sent or self._target_gone:
            return
        self._target_eof_sent = True
        if self._target_eof_received or not self._target.can_write_eof():
            # Both directions are done (or TLS cannot half-close): close after the
            # last byte is written; TLS sends its close_notify.
            self._target.close()
        else:
            self._target.write_eof()
            # Drain what the target still sends until it closes: closing with unread
            # data would reset the connection and could destroy bytes it has not read.
            self._client_full = False
            self._target.resume_reading()
        self._start_target_linger()  # within a bound, whatever the target does

    def _start_target_linger(self) -> None:
        if self._target_linger is None and self._target is not None:
            self._target_linger = self._loop.call_later(self._close_timeout_s, self._target_gave_up)

    def _target_gave_up(self) -> None:
        assert self._target is not None
        left = unsent_bytes(self._target)
        if left:
            self._failure = f"target did not read the last {left} bytes within {self._close_timeout_s:g}s"
        self._target.abort()
        self._target_gone = True  # uvloop raises on a write to an aborted transport
        if self._client_gone is False and not self._session.client_done:
            self._client.abort()  # its bytes can no longer be delivered

    # -- flow control ----------------------------------------------------

    def block_client_reads(self, reason: Blocker) -> None:
        if not self._client_read_blockers:
            self._client.pause_reading()
        self._client_read_blockers.add(reason)
        if reason is Blocker.TARGET_FULL or reason is Blocker.CLIENT_FULL:
            self._stall.arm()

    def unblock_client_reads(self, reason: Blocker) -> None:
        self._client_read_blockers.discard(reason)
        if reason is not Blocker.BUDGET and not self._client_read_blockers & FLOW_BLOCKERS:
            self._stall.disarm()  # nothing is blocked any more
        if self._client_gone:
            return
        if self._client_read_blockers == BUDGET_ONLY:
            self._schedule_drain()
        elif not self._client_read_blockers:
            if self._held:  # read before the pause took effect: its turn is now
                held, self._held = b"".join(self._held), []
                self._parse(held)
                if self._session.backlogged:
                    self._schedule_drain()
                    return
            if not self._client_read_blockers:
                self._client.resume_reading()

    # -- the stall watch's view (flow.Watched) ----------------------------------

    def flow_blockers(self) -> set[Blocker]:
        return set() if self._client_gone or self._done else self._client_read_blockers & FLOW_BLOCKERS

    def progress(self) -> tuple[int, int, int, int]:
        target = unsent_bytes(self._target) if self._target is not None and not self._target_gone else 0
        return self.bytes_up, self.bytes_down, unsent_bytes(self._client), target

    def look_for_hangup(self, blockers: set[Blocker]) -> None:
        """When the target does not read, the client's bytes wait in the kernel, so its
        leaving would go unseen: look at the socket itself."""
        if Blocker.TARGET_FULL in blockers and self._target_linger is None and hung_up(self._client):
            log.info("%s: client left while the target was not reading", self._peer)
            self._start_target_linger()

    def cut_stalled(self, blockers: set[Blocker]) -> None:
        stalled = " and ".join(side for blocker, side in ((Blocker.CLIENT_FULL, "the client does not read"),
                                                          (Blocker.TARGET_FULL, "the target does not read"))
                               if blocker in blockers)
        log.info("%s: stalled: %s (nothing moved for %gs): closing the session",
                 self._peer, stalled, self._stall.timeout_s)
        self._failure = f"stalled: {stalled}"
        if self._target is not None and not self._target_gone:
            self._target.abort()
            self._target_gone = True  # uvloop raises on a write to an aborted transport
        self._client.abort()

    def _read_client_freely(self) -> None:
        """No target to protect any more: read the client until its close reply or EOF."""
        self._pending.clear()
        if Blocker.FAILED in self._client_read_blockers:
            return  # nothing more is read from a client that broke the protocol
        self._client_read_blockers.clear()
        if self._client_gone:
            return
        if self._session.backlogged or self._held:
            self._schedule_drain()
        else:
            self._client.resume_reading()

    def client_write_paused(self) -> None:
        self.block_client_reads(Blocker.CLIENT_FULL)
        if self._target_eof_sent:
            return  # draining the target: its data is discarded, never buffered
        self._client_full = True
        if self._target is not None:
            self._target.pause_reading()

    def client_write_resumed(self) -> None:
        self._client_full = False
        if self._target is not None and not self._target_gone:
            self._target.resume_reading()
        self.unblock_client_reads(Blocker.CLIENT_FULL)

    # -- shutdown --------------------------------------------------------

    def shutdown(self) -> None:
        """Server stop: tell the client we are going away and drop the target."""
        self._close_client(CloseCode.GOING_AWAY, "Server shutting down")
        if self._target is not None and not self._target_gone:
            self._target.close()
        elif self._connect_task is not None and not self._target_gone:
            self._connect_task.cancel()
            self._target_gone = True  # no target will come: the session can finish and log
            self._read_client_freely()  # the client's close reply must be read
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self._done or not (self._client_gone and self._target_gone):
            return
        self._done = True
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None  # its callbacks are the relay's: a cycle (flow.StallWatch.close)
        if self._on_end is not None:
            self._on_end()
        heap_trimmer(self._loop).session_ended()  # after a burst of ends, the heap goes back
        self._client_linger.cancel()
        cancel(self._target_linger)
        self._stall.close()
        if self._recording is not None:
            self._recording.close()
        self._report.ended(target=self._connector.description, bytes_up=self.bytes_up, bytes_down=self.bytes_down,
                           duration_s=time.monotonic() - self._started, close_code=self._session.close_code,
                           close_reason=self._session.close_reason, failure=self._failure)
