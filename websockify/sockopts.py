"""What the kernel knows of a socket that asyncio does not say."""
from __future__ import annotations

import asyncio
import fcntl
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
