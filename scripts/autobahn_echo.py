"""The echo servers `make autobahn` runs: a TCP target for websockify, and websockets' own.

`tcp`: websockify's target; writes back every byte it reads.
`websocket`: the reference column, a websockets asyncio server that echoes each
message as it came (text as text), configured like websockify's WebSocket
side: no compression, the same 1 MiB message limit.
Each binds 127.0.0.1 on a free port, prints `port N` once it listens, and runs
until SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE_BYTES = 1024 * 1024  # websockify's default --max-message-size


class TcpEcho(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        return False  # the client is done: so are we


async def websocket_echo(connection: ServerConnection) -> None:
    try:
        async for message in connection:
            await connection.send(message)
    except ConnectionClosed:
        pass


async def main(kind: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if kind == "tcp":
        server = await loop.create_server(TcpEcho, "127.0.0.1", 0)
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()
        server.close()
        return
    reference = await ws_serve(websocket_echo, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE_BYTES,
                               ping_interval=None)
    print(f"port {next(iter(reference.sockets)).getsockname()[1]}", flush=True)
    await stop.wait()
    reference.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("tcp", "websocket"))
    asyncio.run(main(parser.parse_args().kind))
