"""The relay between one WebSocket client and one target, with flow control on both legs.

Flow control: each leg's transport has a write-buffer high-water mark
(`write_buffer_bytes`). When the client's write buffer is above it, reading from
the target pauses, and so does reading from the client (a client's pings make
pongs: every kind of frame that makes a reply counts). When the target's write
buffer is above it, reading from the client pauses. Reading resumes below the
low-water mark (a quarter of it).

Fairness: the session reads a bounded number of frames and payload bytes per
call (protocol/websocket.py); what it leaves waits for the next turn of the
event loop, with reading from that client paused, so a client sending tiny
frames as fast as it can delays the others by about a millisecond at a time.
The rest also waits while the target is full.

Memory bound per connection, whatever the peers do: each write buffer holds at
most the high-water mark plus one read from the other leg (asyncio reads at
most 256 KiB at a time, 4/3 of that after base64), and the WebSocket parser
holds at most one partial message (`max_message_bytes`). With the defaults
(256 KiB, 1 MiB) that is under 2.5 MiB; an idle connection holds a few KiB.

Closing: the target's EOF closes the WebSocket with 1000 after everything it
sent has been queued to the client; the client's close frame (or its vanishing)
half-closes the target after every byte the client sent was written to it (a TLS
target, or one that has ended its side already, is closed instead). A
peer that does not finish its side within `close_timeout_s` is cut off: the
client that does not answer our close, and the target that does not take the
client's last bytes once the client is gone. A client that broke the protocol
(1002, 1007, 1008, 1009) is not read after our close frame: the connection is
cut as soon as that frame has reached it.

Stalls: while either leg is over its mark (reading paused by flow control), one
timer per session looks every quarter of `stall_timeout_s` whether anything
moved (bytes relayed, or either leg's unsent bytes changed); a session in which
nothing moved for `stall_timeout_s` is cut (so within 1.25 times that of the
last movement), and the log says which side does not read. An idle session has
nothing blocked and no timer: it is never cut. The default is STALL_TIMEOUT_S, or two heartbeat intervals with --heartbeat (the
time in which the heartbeat takes a silent client for dead). Both legs also get
TCP keepalive and TCP_USER_TIMEOUT (sockopts.py) so the kernel finds dead peers.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import select
import time
from typing import Callable

from ..errors import CloseCode, TargetUnavailable
from ..protocol.recording import CLIENT_TO_TARGET, TARGET_TO_CLIENT
from ..protocol.websocket import RelaySession
from ..sockopts import enable_keepalive, unsent_bytes
from .heartbeat import Heartbeat
from .recorder import SessionRecording
from .target import Connector

log = logging.getLogger(__name__)
traffic_log = logging.getLogger("websockify.traffic")


class Blocker(enum.StrEnum):
    """Why reading from the client is paused; it resumes when no reason is left.

    A StrEnum: hashed and compared in C (a plain Enum hashes in Python) on every
    set operation below."""

    CONNECTING = "connecting"  # the target is not connected yet
    BUDGET = "budget"  # the session holds frames it has not read yet (protocol/websocket.py)
    TARGET_FULL = "target-full"  # the target's write buffer is over the mark
    CLIENT_FULL = "client-full"  # the client's write buffer is over the mark: its pings make pongs
    FAILED = "failed"  # the client broke the protocol and has our close: nothing it sends is read


_BUDGET_ONLY = frozenset({Blocker.BUDGET})  # bound once: a set made per call would be an allocation

# Close codes that blame the client's input (the session failed): after the close
# frame, what the client sends is discarded, so it is not read at all.
_CLIENT_FAULTS = frozenset({CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA, CloseCode.POLICY_VIOLATION,
                            CloseCode.MESSAGE_TOO_BIG})
# After such a close: how often to look whether the close frame has reached the client.
_DELIVERY_CHECK_S = 0.05

# Flow-control blockers: while one holds, the stall watch runs.
_FLOW_BLOCKERS = frozenset({Blocker.TARGET_FULL, Blocker.CLIENT_FULL})
# A session blocked by flow control with nothing moving for this long is cut
# (without --heartbeat; with it, two heartbeat intervals).
STALL_TIMEOUT_S = 60.0
_NO_MARK = (-1, -1, -1, -1)

_HANGUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


class TargetProtocol(asyncio.Protocol):
    """Forwards the target's transport events to its relay."""

    # data_received is the relay's own bound method: the event loop calls it
    # straight, one Python frame less on every message from the target.
    __slots__ = ("_relay", "data_received")

    def __init__(self, relay: "Relay"):
        self._relay = relay
        self.data_received = relay.target_data  # type: ignore[method-assign]

    def eof_received(self) -> bool:
        return self._relay.target_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.target_lost(exc)

    def pause_writing(self) -> None:
        self._relay.block_client_reads(Blocker.TARGET_FULL)

    def resume_writing(self) -> None:
        self._relay.unblock_client_reads(Blocker.TARGET_FULL)


class Relay:
    # One per session, thousands at once: no per-instance dict (past 30 attributes
    # CPython stops sharing its keys, about 1 KB more per session).
    __slots__ = ("_client", "_client_full", "_client_gone", "_client_linger", "_client_read_blockers",
                 "_close_timeout_s", "_connect_task", "_connector", "_done", "_drain_scheduled", "_failure",
                 "_heartbeat", "_held", "_loop", "_on_end", "_peer", "_pending", "_recording", "_session",
                 "_stall_mark", "_stall_since", "_stall_timeout_s", "_stall_watch", "_started", "_target",
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
    ):
        """`stall_timeout_s`: see the module's docstring; None for the default, 0 for none."""
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
        self._client_read_blockers: set[Blocker] = set()
        self._client_full = False  # the client's write buffer is over the mark: target reads paused
        self._client_gone = False
        self._target_gone = False
        self._target_eof_sent = False
        self._target_eof_received = False
        self._client_linger: asyncio.TimerHandle | None = None
        self._target_linger: asyncio.TimerHandle | None = None
        self._stall_watch: asyncio.TimerHandle | None = None
        if stall_timeout_s is None:
            stall_timeout_s = 2 * heartbeat_s if heartbeat_s else STALL_TIMEOUT_S
        self._stall_timeout_s = stall_timeout_s
        self._stall_mark: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._stall_since = 0.0
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
        if not self._drain_scheduled and self._client_read_blockers <= _BUDGET_ONLY:
            self.block_client_reads(Blocker.BUDGET)  # nothing new until the backlog is read
            self._drain_scheduled = True
            self._loop.call_soon(self._drain_backlog)

    def _drain_backlog(self) -> None:
        """The session's next budget of frames, unless the target filled up meanwhile."""
        self._drain_scheduled = False
        if self._client_gone or not self._client_read_blockers <= _BUDGET_ONLY:
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
        if self._held:  # the stream ended: no more turns to wait for
            held, self._held = b"".join(self._held), []
            self._deliver(self._session.receive_data(held))
        payloads = self._session.receive_eof()  # the session reads its backlog first
        if payloads:
            self._deliver(payloads)
        self._flush_client()
        self._end_target_writes()

    def client_lost(self) -> None:
        self._client_gone = True  # nothing may be written to it any more
        if not self._session.client_done:
            self.client_eof()
        self._cancel(self._client_linger)
        self._cancel(self._stall_watch)
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
        self._cancel(self._client_linger)
        deadline = self._loop.time() + self._close_timeout_s
        self._client_linger = self._loop.call_later(_DELIVERY_CHECK_S, self._failed_client_check, deadline, -1)

    def _failed_client_check(self, deadline: float, buffered_before: int) -> None:
        buffered = unsent_bytes(self._client)
        if buffered and self._loop.time() < deadline:
            self._client_linger = self._loop.call_later(_DELIVERY_CHECK_S, self._failed_client_check,
                                                        deadline, buffered_before)
        elif buffered and (buffered_before < 0 or buffered < buffered_before):
            # Still reading what was queued before the close: another close timeout.
            self._client_linger = self._loop.call_later(
                _DELIVERY_CHECK_S, self._failed_client_check, self._loop.time() + self._close_timeout_s, buffered)
        else:
            self._client.abort()  # delivered (or never to be): unread client bytes make this a reset

    def _close_client(self, code: int, reason: str) -> None:
        """Start the closing handshake; a client that never answers is cut off."""
        self._session.close(code, reason)
        self._flush_client()
        self._start_client_linger()

    def _start_client_linger(self) -> None:
        if self._client_linger is None and not self._client_gone:
            # What is unsent is read when the timer fires: most clients are gone by then.
            self._client_linger = self._loop.call_later(self._close_timeout_s, self._client_linger_check, -1)

    def _client_linger_check(self, buffered_before: int) -> None:
        """A client still reading what we queued before the close gets more time;
        one that reads nothing (or does not end its side) is cut off."""
        buffered = unsent_bytes(self._client)
        if 0 < buffered and (buffered_before < 0 or buffered < buffered_before):
            self._client_linger = self._loop.call_later(self._close_timeout_s, self._client_linger_check, buffered)
        else:
            self._client.abort()

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

    def target_eof(self) -> bool:
        self._target_eof_received = True
        self._close_client(CloseCode.NORMAL, "Target closed")
        # Keep the transport open: the target may still read what the client sends
        # (a TLS transport cannot be half-open: asyncio closes it whatever we say).
        tls = self._target is not None and self._target.get_extra_info("ssl_object") is not None
        return not self._session.client_done and not tls

    def target_lost(self, exc: Exception | None) -> None:
        self._target_gone = True
        self._cancel(self._target_linger)
        self._cancel(self._stall_watch)
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
        if ((reason is Blocker.TARGET_FULL or reason is Blocker.CLIENT_FULL) and self._stall_watch is None
                and self._stall_timeout_s > 0):
            self._stall_mark = _NO_MARK  # the first look takes it: no system call here
            self._stall_watch = self._loop.call_later(self._stall_tick_s(), self._watch_stall)

    def unblock_client_reads(self, reason: Blocker) -> None:
        self._client_read_blockers.discard(reason)
        if (self._stall_watch is not None and reason is not Blocker.BUDGET
                and not self._client_read_blockers & _FLOW_BLOCKERS):
            self._stall_watch.cancel()  # nothing is blocked any more
            self._stall_watch = None
        if self._client_gone:
            return
        if self._client_read_blockers == _BUDGET_ONLY:
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

    def _stall_tick_s(self) -> float:
        return min(self._close_timeout_s, self._stall_timeout_s / 4)

    def _progress(self) -> tuple[int, int, int, int]:
        """What moves when anything is relayed: a stalled session keeps all four still."""
        target = unsent_bytes(self._target) if self._target is not None and not self._target_gone else 0
        return self.bytes_up, self.bytes_down, unsent_bytes(self._client), target

    def _watch_stall(self) -> None:
        """Runs while a leg is over its mark: cut the session if nothing moved for the
        stall timeout. And when the target does not read, the client's bytes wait in
        the kernel, so its leaving would go unseen: look at the socket itself."""
        self._stall_watch = None
        blockers = self._client_read_blockers
        if self._client_gone or self._done or not blockers & _FLOW_BLOCKERS:
            return
        sock = self._client.get_extra_info("socket")
        if Blocker.TARGET_FULL in blockers and sock is not None and self._target_linger is None:
            poller = select.poll()
            poller.register(sock.fileno(), _HANGUP)
            if poller.poll(0):
                log.info("%s: client left while the target was not reading", self._peer)
                self._start_target_linger()
        now, mark = self._loop.time(), self._progress()
        if mark != self._stall_mark:
            self._stall_mark, self._stall_since = mark, now
        elif now - self._stall_since >= self._stall_timeout_s:
            self._cut_stalled(blockers)
            return
        self._stall_watch = self._loop.call_later(self._stall_tick_s(), self._watch_stall)

    def _cut_stalled(self, blockers: set[Blocker]) -> None:
        stalled = " and ".join(side for blocker, side in ((Blocker.CLIENT_FULL, "the client does not read"),
                                                          (Blocker.TARGET_FULL, "the target does not read"))
                               if blocker in blockers)
        log.info("%s: stalled: %s (nothing moved for %gs): closing the session",
                 self._peer, stalled, self._stall_timeout_s)
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
        if self._on_end is not None:
            self._on_end()
        self._cancel(self._client_linger)
        self._cancel(self._target_linger)
        self._cancel(self._stall_watch)
        if self._recording is not None:
            self._recording.close()
        code = self._session.close_code
        reason = self._session.close_reason
        log.info(
            "%s target=%s up=%d down=%d duration=%.3fs close=%s%s%s",
            self._peer, self._connector.description, self.bytes_up, self.bytes_down,
            time.monotonic() - self._started, code if code is not None else "-",
            f" ({reason})" if reason else "", f" error={self._failure}" if self._failure else "",
        )

    @staticmethod
    def _cancel(handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()
