"""The soak test's target: a TCP echo server on one asyncio (uvloop) loop.

Thread-per-connection or socat cannot hold 10 000 connections cheaply; one
event loop can. Binds 127.0.0.1 on a free port and prints `port N` once it
listens, then echoes every byte back until the soak test stops it.
"""
from __future__ import annotations

import asyncio
import resource
import signal
from typing import cast

WRITE_HIGH_WATER = 256 * 1024


class Echo(asyncio.Protocol):
    """Writes back what it reads; stops reading while its own output is backed up."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        return False  # close our side too: the relay is done with this session

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    raise_file_limit()
    try:
        import uvloop
        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
