"""A transparent TCP relay in Python on uvloop, and nothing else: the benchmark's
"py-relay" columns put it in front of the load generator's own WebSocket server.

It does none of a WebSocket proxy's work (no request head, no handshake, no frames,
no logging), so what it reaches is what any proxy written as Python callbacks on
uvloop can reach on this machine at best, per connection and per message: the
floor under our own column, and the ceiling above it.

    python bench/py_relay.py [--workers N] LISTEN_HOST:PORT TARGET_HOST:PORT

With --workers N, N processes (forked after binding) accept on the one socket,
as `websockify --workers N` does.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Optional, cast

import uvloop

HIGH_WATER = 256 * 1024


class Leg(asyncio.Protocol):
    """One side of a relayed connection; `peer` is the other side once it exists."""

    def __init__(self, peer: Optional["Leg"] = None):
        self.peer = peer
        self.transport: Optional[asyncio.Transport] = None

    @property
    def other(self) -> Optional[asyncio.Transport]:
        return self.peer.transport if self.peer is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        other = self.other
        if other is not None and not other.is_closing():
            other.write(data)

    def eof_received(self) -> bool:
        self.connection_lost(None)  # close the other after what is queued, as websocat --exit-on-eof does
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        other = self.other
        if other is not None:
            other.close()

    def pause_writing(self) -> None:
        other = self.other
        if other is not None:
            other.pause_reading()

    def resume_writing(self) -> None:
        other = self.other
        if other is not None:
            other.resume_reading()


class ClientLeg(Leg):
    """The accepted side: reading waits until the target is connected."""

    target: tuple[str, int] = ("127.0.0.1", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.early: list[bytes] = []
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.early.append(data)  # uvloop may deliver a read before pause_reading takes effect
        else:
            super().data_received(data)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        try:
            target, self.peer = await loop.create_connection(lambda: Leg(self), *self.target)
        except OSError:
            self.transport.abort()
            return
        if self.transport.is_closing():  # the client left while we connected
            target.close()
            return
        target.writelines(self.early)
        self.early.clear()
        self.transport.resume_reading()


def _split(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(ClientLeg, sock=sock, backlog=1024)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    workers = 1
    if argv[:1] == ["--workers"]:
        workers, argv = int(argv[1]), argv[2:]
    if len(argv) != 2:
        print("usage: py_relay.py [--workers N] LISTEN_HOST:PORT TARGET_HOST:PORT", file=sys.stderr)
        return 2
    listen, ClientLeg.target = _split(argv[0]), _split(argv[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(listen)
    sock.listen(1024)
    sock.setblocking(False)
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    uvloop.run(_serve(sock))
    for pid in children:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
