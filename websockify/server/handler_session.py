"""A WebSocket session served by an embedding program's handler class, on a thread.

Upstream's library API lets a program subclass ProxyRequestHandler and write
`new_websocket_client()`: blocking code that may talk to the client first
(`recv_frames`, `send_frames`: nova's RFB security proxy does) and then hands a
connected target socket to `do_proxy()`. That method runs on a thread
(handler_threads.py); this is its event-loop side. It owns the client from the
101 until `do_proxy`: it decodes the client's messages into a queue the thread
reads, and writes what the thread sends. On `do_proxy` the ordinary relay takes
over, on the same WebSocket session and the target socket, so the bytes are
relayed with our flow control, limits, heartbeat, recording and log line;
the thread waits until the session ends, as upstream's `do_proxy` did.

Everything the thread calls (the ClientChannel methods) crosses to the loop with
`call_soon_threadsafe`; what the loop hands the thread crosses under one lock.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket
from dataclasses import dataclass
from typing import Callable, Protocol

from ..errors import CloseCode, TargetUnavailable
from ..os_threads import threading
from ..protocol.websocket import RelaySession
from ..proxy.target import ProtocolFactory

log = logging.getLogger(__name__)

# Client bytes queued for a thread that does not read them: past this, reading pauses.
MAX_QUEUED_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Closed:
    """How the client's side ended: upstream's `{'code': ..., 'reason': ...}`."""
    code: int | None
    reason: str


class ClientChannel(Protocol):
    """The client as the handler's thread sees it (websockifyserver.py)."""

    def receive(self, timeout_s: float | None) -> tuple[list[bytes], Closed | None]:
        """The messages received so far, waiting up to `timeout_s` for the first one."""

    def send(self, payloads: list[bytes]) -> None: ...

    def ping(self, data: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def proxy(self, target: socket.socket) -> Closed:
        """Relay between the client and `target` on the event loop; returns when the session ends."""

    @property
    def address(self) -> tuple[str, int] | tuple[()]: ...


class StartRelay(Protocol):
    def __call__(self, session: RelaySession, target: "SocketConnector", on_end: Callable[[], None]) -> None: ...


class SocketConnector:
    """A Connector for a socket the handler connected already; `pending`, client
    messages the handler did not read, are written to it first."""

    def __init__(self, sock: socket.socket, pending: list[bytes]):
        # eventlet's green socket (a handler under monkey patching) wraps the real one in `fd`.
        self._sock: socket.socket = sock if isinstance(sock, socket.socket) else getattr(sock, "fd", sock)
        self._pending = pending
        try:
            name = sock.getpeername()
        except OSError:
            name = "?"
        self.description = f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        try:
            self._sock.setblocking(False)
            if self._sock.family == socket.AF_UNIX:
                transport, _ = await loop.create_unix_connection(factory, sock=self._sock)
            else:
                transport, _ = await loop.create_connection(factory, sock=self._sock)
        except (OSError, ValueError) as exc:
            raise TargetUnavailable(f"the handler's target socket: {exc}") from None
        if self._pending:
            transport.writelines(self._pending)
            self._pending = []
        return transport


class HandlerSession:
    """The loop side of one handler session; also the ClientChannel its thread uses."""

    def __init__(self, transport: asyncio.Transport, session: RelaySession, address: tuple[str, int] | tuple[()],
                 start_relay: StartRelay, max_queued_bytes: int = MAX_QUEUED_BYTES):
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._session = session
        self._address = address
        self._start_relay = start_relay
        self._max_queued = max_queued_bytes
        self._lock = threading.Condition()
        self._messages: collections.deque[bytes] = collections.deque()  # guarded by _lock
        self._queued_bytes = 0  # guarded by _lock
        self._closed: Closed | None = None  # guarded by _lock
        self._paused = False  # loop only
        self._relaying = False  # loop only: the relay owns the client now
        self._ended = threading.Event()
        self._result = Closed(None, "")

    @property
    def address(self) -> tuple[str, int] | tuple[()]:
        return self._address

    @property
    def relaying(self) -> bool:
        return self._relaying

    # -- the loop side: the client connection's events until the relay starts ------

    def client_data(self, data: "bytes | memoryview") -> None:
        payloads = self._session.receive_data(data)
        self._flush()
        while self._session.backlogged:  # no relay budget here: the thread reads at its pace
            payloads += self._session.receive_data(b"")
            self._flush()
        self._queue(payloads, self._closing())

    def client_eof(self) -> None:
        payloads = self._session.receive_eof()
        self._flush()
        self._queue(payloads, Closed(self._session.close_code or CloseCode.ABNORMAL, self._session.close_reason))

    def client_lost(self) -> None:
        self._queue([], Closed(self._session.close_code or CloseCode.ABNORMAL, self._session.close_reason))
        self._ended.set()  # a thread waiting in proxy() for a relay that never started

    def _closing(self) -> Closed | None:
        return Closed(self._session.close_code, self._session.close_reason) if self._session.client_done else None

    def _queue(self, payloads: list[bytes], closed: Closed | None) -> None:
        with self._lock:
            for payload in payloads:
                self._messages.append(payload)
                self._queued_bytes += len(payload)
            if closed is not None and self._closed is None:
                self._closed = closed
            full = self._queued_bytes > self._max_queued
            self._lock.notify_all()
        if full and not self._paused and not self._transport.is_closing():
            self._paused = True
            self._transport.pause_reading()

    def _flush(self) -> None:
        chunks = self._session.data_to_send()
        if chunks and not self._transport.is_closing():
            self._transport.writelines(chunks)

    def _resume(self) -> None:
        if self._paused and not self._relaying and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()

    # -- the thread side (ClientChannel) ---------------------------------------------

    def receive(self, timeout_s: float | None) -> tuple[list[bytes], Closed | None]:
        with self._lock:
            self._lock.wait_for(lambda: self._messages or self._closed is not None, timeout_s)
            messages = list(self._messages)
            self._messages.clear()
            was_full = self._queued_bytes > self._max_queued
            self._queued_bytes = 0
            closed = self._closed
        if was_full:
            self._loop.call_soon_threadsafe(self._resume)
        return messages, closed

    def send(self, payloads: list[bytes]) -> None:
        self._loop.call_soon_threadsafe(self._send, payloads)

    def _send(self, payloads: list[bytes]) -> None:
        if self._relaying:
            return  # the relay owns the client: upstream's handler wrote nothing after do_proxy
        for payload in payloads:
            self._session.send_payload(payload)
        self._flush()

    def ping(self, data: bytes) -> None:
        self._loop.call_soon_threadsafe(self._ping)

    def _ping(self) -> None:
        if not self._relaying:
            self._session.ping()
            self._flush()

    def close(self, code: int, reason: str) -> None:
        self._loop.call_soon_threadsafe(self._close, code, reason)

    def _close(self, code: int, reason: str) -> None:
        if self._relaying or self._transport.is_closing():
            return
        self._session.close(code, reason)
        self._flush()
        self._transport.close()

    def proxy(self, target: socket.socket) -> Closed:
        self._loop.call_soon_threadsafe(self._hand_over, target)
        self._ended.wait()
        return self._result

    def _hand_over(self, target: socket.socket) -> None:
        if self._transport.is_closing():
            target.close()
            self._ended.set()
            return
        with self._lock:  # on the loop: no client message can arrive meanwhile
            pending = list(self._messages)  # read by nobody: they were the target's
            self._messages.clear()
            self._queued_bytes = 0
        self._relaying = True
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        self._start_relay(self._session, SocketConnector(target, pending), self._relay_ended)

    def _relay_ended(self) -> None:
        self._result = Closed(self._session.close_code, self._session.close_reason)
        self._ended.set()
