"""Readiness reports from rebind.so, received on the event loop without polling.

rebind.so sends one datagram, "HOST PORT", each time a moved socket of the
wrapped program starts listening (see rebind.c). The socket lives in
websockify's private 0700 work directory, so only our own user can reach it,
and each start of the program gets a fresh one: a report can never come from
an earlier, dead generation.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from typing import Callable

from ..config import TcpAddress

log = logging.getLogger(__name__)

# sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
MAX_PATH_BYTES = 107
_MAX_REPORT_BYTES = 128


def parse_report(data: bytes) -> TcpAddress | None:
    """b"127.0.0.1 5901" → TcpAddress; None unless a loopback address and a real port."""
    try:
        host, port_text = data.decode("ascii").split()
        port = int(port_text)
        if not ipaddress.ip_address(host).is_loopback or not 0 < port <= 65535:
            return None
    except ValueError:  # also UnicodeDecodeError and a wrong number of fields
        return None
    return TcpAddress(host, port)


class ReadinessSocket:
    """A Unix datagram socket at `path`; `on_report(address)` runs for each valid report."""

    def __init__(self, path: str, on_report: Callable[[TcpAddress], None]):
        if len(path.encode()) > MAX_PATH_BYTES:
            raise OSError(f"the path {path} is longer than a Unix socket allows")
        self.path = path
        self._on_report = on_report
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(path)
            self._sock.setblocking(False)
            self._loop.add_reader(self._sock.fileno(), self._readable)
        except BaseException:
            self._sock.close()
            raise

    def _readable(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(_MAX_REPORT_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            address = parse_report(data)
            if address is None:
                log.warning("ignoring a malformed readiness report %r on %s", data[:80], self.path)
                continue
            self._on_report(address)  # may close us

    def close(self) -> None:
        if self._sock is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)
