"""--proxy-protocol: read the PROXY header a load balancer puts before every connection.

HAProxy (send-proxy, send-proxy-v2), nginx, AWS NLB and Envoy tell the server
who the client is in a header before the client's first byte, TLS included.
With --proxy-protocol every accepted socket goes through here first: a peer
outside --trusted-proxies is closed at once (anyone could otherwise claim any
address); the header is read without taking a byte more (peeked, then exactly
its length consumed), so TLS sniffing sees the stream as the client sent it;
bytes of a header not complete yet are all the header's, so they are taken
(the socket is then readable only when more come, or at its end);
a connection without a valid header within the handshake deadline is closed
with a log line, never guessed. Then the accept path goes on with the client's
address in place of the balancer's. A Unix-socket peer is trusted: the socket
file's permissions say who may connect.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import Callable

from ..errors import Refusal
from ..metrics import meter
from ..protocol.proxy_header import MAX_HEADER_BYTES, ProxyHeaderError, parse
from ..service.log_throttle import ThrottledLog
from .peer import format_peer

log = logging.getLogger(__name__)

OnClient = Callable[[socket.socket, object], None]


@dataclass(slots=True)
class _Pending:
    timer: asyncio.TimerHandle  # the handshake deadline
    address: object  # the balancer's
    received: bytearray = field(default_factory=bytearray)  # the start of its header


class ProxyIntake:
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float, trusted: Callable[[str], bool],
                 on_client: OnClient):
        """`on_client(sock, client_address)`: the header was read; the socket's next byte is the client's."""
        self._loop = loop
        self._timeout_s = timeout_s
        self._trusted = trusted
        self._on_client = on_client
        self._pending: dict[socket.socket, _Pending] = {}
        self._untrusted = ThrottledLog(log, logging.WARNING, "refused: not a trusted proxy", loop.time, loop.call_at)
        self._bad = ThrottledLog(log, logging.WARNING, "dropped: no valid PROXY header", loop.time, loop.call_at)

    def accept(self, sock: socket.socket, address: object) -> None:
        ip = address[0] if isinstance(address, tuple) else ""
        if ip and not self._trusted(ip):
            self._untrusted("%s: refused: not a trusted proxy (--trusted-proxies), and --proxy-protocol is on",
                            format_peer(address))
            meter().handshake_failed(Refusal.PROXY_HEADER)
            sock.close()
            return
        timer = self._loop.call_later(self._timeout_s, self._expired, sock)
        self._pending[sock] = _Pending(timer, address)
        self._loop.add_reader(sock.fileno(), self._readable, sock)

    def _readable(self, sock: socket.socket) -> None:
        pending = self._pending.get(sock)
        if pending is None:
            return
        try:
            data = sock.recv(MAX_HEADER_BYTES - len(pending.received), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if pending.received:
                self._bad("%s: dropped: the connection ended inside its PROXY header (--proxy-protocol)",
                          format_peer(pending.address))
                meter().handshake_failed(Refusal.PROXY_HEADER)
            self._drop(sock)
            return
        try:
            header = parse(bytes(pending.received) + data)
        except ProxyHeaderError as exc:
            self._bad("%s: dropped: no valid PROXY header (--proxy-protocol): %s", format_peer(pending.address), exc)
            meter().handshake_failed(Refusal.PROXY_HEADER)
            self._drop(sock)
            return
        try:
            if header is None:  # every byte so far is the header's: take them, and wait for more
                pending.received += sock.recv(len(data))
                return
            self._forget(sock)
            sock.recv(header.length - len(pending.received))  # peeked already: all there
        except OSError:
            self._drop(sock)
            return
        # LOCAL (a balancer's health check) names no client: it is the balancer's own.
        client = header.source if header.source is not None else pending.address
        self._on_client(sock, client)

    def _expired(self, sock: socket.socket) -> None:
        pending = self._pending.get(sock)
        if pending is not None:
            self._bad("%s: dropped: no PROXY header within %gs (--proxy-protocol)", format_peer(pending.address),
                      self._timeout_s)
            meter().handshake_failed(Refusal.PROXY_HEADER)
            self._drop(sock)

    def _forget(self, sock: socket.socket) -> None:
        self._pending.pop(sock).timer.cancel()
        self._loop.remove_reader(sock.fileno())

    def _drop(self, sock: socket.socket) -> None:
        if sock in self._pending:
            self._forget(sock)
        sock.close()

    def close(self) -> None:
        """Stop: close every socket still sending its header."""
        for sock in list(self._pending):
            self._drop(sock)
