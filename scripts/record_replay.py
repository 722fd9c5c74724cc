#!/usr/bin/env python3
"""Replay a websockify session recording to WebSocket clients.

Listens on HOST:PORT; every client that connects receives the recorded
target → client messages with their original timing, divided by --speed, then
a close 1000. What the client sends is read and ignored. With noVNC pointed at
it, a recorded VNC session plays back in the browser.

    scripts/record_replay.py FILE.1 --listen 127.0.0.1:6081 --speed 2
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from websockets.asyncio.server import serve

from websockify.protocol.recording import TARGET_TO_CLIENT, parse_recording


def select_subprotocol(_connection, offered):
    return "binary" if "binary" in offered else None


async def replay(frames, speed: float, connection) -> None:
    async def drain_client():
        async for _ in connection:
            pass

    reader = asyncio.ensure_future(drain_client())
    start = asyncio.get_running_loop().time()
    for frame in frames:
        delay = start + frame.offset_ms / 1000 / speed - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        await connection.send(frame.data)
    await connection.close(1000, "Replay finished")
    reader.cancel()


async def main_async(args) -> None:
    with open(args.recording, encoding="ascii") as file:
        frames = [f for f in parse_recording(file.read()) if f.direction == TARGET_TO_CLIENT]
    host, _, port = args.listen.rpartition(":")
    async with serve(lambda c: replay(frames, args.speed, c), host.strip("[]") or None, int(port),
                     select_subprotocol=select_subprotocol, compression=None) as server:
        bound = server.sockets[0].getsockname()
        print(f"replaying {len(frames)} messages on ws://{bound[0]}:{bound[1]}/ at {args.speed:g}x", flush=True)
        await asyncio.get_running_loop().create_future()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording")
    parser.add_argument("--listen", default="127.0.0.1:6081", help="HOST:PORT to listen on (port 0: any)")
    parser.add_argument("--speed", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    args = parser.parse_args()
    if args.speed <= 0:
        parser.error("--speed must be positive")
    try:
        asyncio.run(main_async(args))
    except (OSError, ValueError) as exc:
        print(f"record_replay: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
