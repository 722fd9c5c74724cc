"""What the kernel knows of a socket that asyncio does not say, and the options we set on it."""
from __future__ import annotations

import asyncio
import fcntl
import socket
import sys
import termios


def unsent_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes written to `transport` that the peer has not received yet: the
    transport's buffer plus the kernel's send queue (which holds megabytes)."""
    buffered = transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            buffered += int.from_bytes(queued, sys.byteorder)
        except OSError:
            pass
    return buffered


# Dead peers found by the kernel on both legs (docs/security.md, "Stalled sessions
# and dead peers"): an idle connection is probed after 60 s of silence, every 10 s,
# and dropped after 6 unanswered probes (found within 2 minutes); data that stays
# unacknowledged for 120 s drops the connection too. A live peer that acknowledges
# but does not read (a zero window) is the stall timeout's business (proxy/pump.py).
KEEPALIVE_IDLE_S = 60
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 6
USER_TIMEOUT_S = 120


def enable_keepalive(transport: asyncio.BaseTransport) -> None:
    """TCP keepalive and TCP_USER_TIMEOUT on a TCP transport (the target leg); nothing
    on others (Unix sockets), and nothing if the kernel refuses (the session goes on)."""
    set_keepalive(transport.get_extra_info("socket"))


def set_keepalive(sock: socket.socket | None) -> None:
    """The same on a socket. Set on a listening socket, every connection it accepts
    inherits the options (Linux copies them): the client leg costs no system call per
    connection, which measured about a tenth of the new-connection rate."""
    if sock is None or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_S * 1000)
    except (OSError, AttributeError):  # not Linux, or a socket that is closing
        pass
