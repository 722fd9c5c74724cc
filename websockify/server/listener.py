"""Listening sockets and the accept loop.

We accept ourselves (rather than through loop.create_server) so that a
connection can be looked at before a transport owns it: a TLS client must be
recognised by its first byte before the TLS layer wraps the socket.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any, Callable

from ..config import TcpAddress
from ..errors import StartupError

log = logging.getLogger(__name__)

AcceptHandler = Callable[[socket.socket, object], None]
_ACCEPT_BATCH = 64  # accepts per readiness event, so one busy listener cannot starve the relays
_EMFILE_PAUSE_S = 0.1


def _listen_addresses(address: TcpAddress, prefer_ipv6: bool) -> list[tuple[Any, ...]]:
    """Resolve the source address; upstream binds only the first (IPv4 unless -6)."""
    if address.host == "":
        host = "::" if prefer_ipv6 and socket.has_ipv6 else "0.0.0.0"
    else:
        host = address.host
    try:
        infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve source address {address.host!r}: {exc.strerror}") from None
    infos.sort(key=lambda info: (info[0] == socket.AF_INET6) != prefer_ipv6)
    return infos


def open_listener(address: TcpAddress, prefer_ipv6: bool, backlog: int) -> socket.socket:
    family, kind, proto, _, sockaddr = _listen_addresses(address, prefer_ipv6)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and sockaddr[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] also takes IPv4
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class Listener:
    """Calls `on_accept(sock, address)` for every accepted connection."""

    def __init__(self, sock: socket.socket, on_accept: AcceptHandler):
        self.sock = sock
        self._on_accept = on_accept
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        if self.sock.fileno() >= 0:  # closed meanwhile (a pause after EMFILE may end after close)
            self._loop.add_reader(self.sock.fileno(), self._accept_ready)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _accept_ready(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a moment instead of spinning.
                    log.error("accept failed: %s; pausing for %.1fs", exc.strerror, _EMFILE_PAUSE_S)
                    self._loop.remove_reader(self.sock.fileno())
                    self._loop.call_later(_EMFILE_PAUSE_S, self.start)
                    return
                raise
            conn.setblocking(False)
            self._on_accept(conn, address)
