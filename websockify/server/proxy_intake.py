"""--proxy-protocol: read the PROXY header a load balancer puts before every connection.

HAProxy (send-proxy, send-proxy-v2), nginx, AWS NLB and Envoy tell the server
who the client is in a header before the client's first byte, TLS included.
With --proxy-protocol every accepted socket goes through here first: a peer
outside --trusted-proxies is closed at once (anyone could otherwise claim any
address); the header is read without taking a byte more (peeked, then exactly
its length consumed), so TLS sniffing sees the stream as the client sent it;
a connection without a valid header within the handshake deadline is closed
with a log line, never guessed. Then the accept path goes on with the client's
address in place of the balancer's. A Unix-socket peer is trusted: the socket
file's permissions say who may connect.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable

from ..protocol.proxy_header import MAX_HEADER_BYTES, ProxyHeaderError, parse
from .log_throttle import ThrottledLog
from .peer import format_peer

log = logging.getLogger(__name__)

# A header split across packets is rare (HAProxy writes it with the first bytes):
# look again after this rather than spin on a socket that stays readable.
_RETRY_S = 0.01

OnClient = Callable[[socket.socket, object], None]


class ProxyIntake:
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float, trusted: Callable[[str], bool],
                 on_client: OnClient):
        """`on_client(sock, client_address)`: the header was read; the socket's next byte is the client's."""
        self._loop = loop
        self._timeout_s = timeout_s
        self._trusted = trusted
        self._on_client = on_client
        self._pending: dict[socket.socket, tuple[asyncio.TimerHandle, object]] = {}
        self._untrusted = ThrottledLog(log, logging.WARNING, "refused: not a trusted proxy", loop.time, loop.call_at)
        self._bad = ThrottledLog(log, logging.WARNING, "dropped: no valid PROXY header", loop.time, loop.call_at)

    def accept(self, sock: socket.socket, address: object) -> None:
        ip = address[0] if isinstance(address, tuple) else ""
        if ip and not self._trusted(ip):
            self._untrusted("%s: refused: not a trusted proxy (--trusted-proxies), and --proxy-protocol is on",
                            format_peer(address))
            sock.close()
            return
        timer = self._loop.call_later(self._timeout_s, self._expired, sock)
        self._pending[sock] = (timer, address)
        self._loop.add_reader(sock.fileno(), self._readable, sock)

    def _readable(self, sock: socket.socket) -> None:
        pending = self._pending.get(sock)
        if pending is None:
            return
        address = pending[1]
        try:
            data = sock.recv(MAX_HEADER_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            header = parse(data)
        except ProxyHeaderError as exc:
            self._bad("%s: dropped: no valid PROXY header (--proxy-protocol): %s", format_peer(address), exc)
            self._drop(sock)
            return
        if header is None:  # not all of it yet
            self._loop.remove_reader(sock.fileno())
            self._loop.call_later(_RETRY_S, self._look_again, sock)
            return
        self._forget(sock)
        try:
            sock.recv(header.length)  # peeked already: all there
        except OSError:
            sock.close()
            return
        # LOCAL (a balancer's health check) names no client: it is the balancer's own.
        client = header.source if header.source is not None else address
        self._on_client(sock, client)

    def _look_again(self, sock: socket.socket) -> None:
        if sock in self._pending:
            self._loop.add_reader(sock.fileno(), self._readable, sock)

    def _expired(self, sock: socket.socket) -> None:
        pending = self._pending.get(sock)
        if pending is not None:
            self._bad("%s: dropped: no PROXY header within %gs (--proxy-protocol)", format_peer(pending[1]),
                      self._timeout_s)
            self._drop(sock)

    def _forget(self, sock: socket.socket) -> None:
        timer, _ = self._pending.pop(sock)
        timer.cancel()
        self._loop.remove_reader(sock.fileno())

    def _drop(self, sock: socket.socket) -> None:
        if sock in self._pending:
            self._forget(sock)
        sock.close()

    def close(self) -> None:
        """Stop: close every socket still sending its header."""
        for sock in list(self._pending):
            self._drop(sock)
