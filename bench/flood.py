#!/usr/bin/env python3
"""Fairness and memory under a flood of tiny frames (issue 17, item 5).

N flooders send 1-byte WebSocket frames as fast as websockify reads them, through
websockify to an echo target, while one normal client measures its round trips.
After each round the flooders close; the websockify process's RSS is read then.

    .venv/bin/python bench/flood.py                       # N = 10, 100, 1000
    .venv/bin/python bench/flood.py --flooders 1000 --rounds 3
    .venv/bin/python bench/flood.py --proxy-arg=--verbose  # more websockify options
    .venv/bin/python bench/flood.py --tree /tmp/old        # websockify from another tree

The flooders and the echo target run in processes of their own (asyncio on uvloop);
the normal client is a blocking socket in this one.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MASK = b"\x11\x22\x33\x44"


def frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One masked client frame with a payload under 126 bytes."""
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + MASK + masked


def upgrade_request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: binary\r\n\r\n").encode()


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


# -- the echo target (its own process) ------------------------------------------------

async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _echo_main() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes


# -- the flooders (their own process) ---------------------------------------------------

async def _flooder(port: int, burst: bytes, opened: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request())
    await reader.readuntil(b"\r\n\r\n")
    opened.append(1)

    async def drain() -> None:
        while await reader.read(1 << 16):
            pass

    draining = asyncio.ensure_future(drain())
    try:
        while True:
            writer.write(burst)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        draining.cancel()
        writer.transport.abort()


async def _flooders_main(port: int, count: int) -> None:
    burst = frame(b"x") * 4096
    opened: list[int] = []
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.ensure_future(_flooder(port, burst, opened)))
        await asyncio.sleep(0.001)  # the accept queue is not the subject here
    while len(opened) < count:
        await asyncio.sleep(0.05)
    print("flooding", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- the driver --------------------------------------------------------------------------

def _child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def start_proxy(target_port: int, extra: list[str], tree: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "websockify", *extra, "127.0.0.1:0", f"127.0.0.1:{target_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tree,
                            env={**os.environ, "PYTHONPATH": tree})
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"listening on [^\s]+:(\d+)", line)
        if match:
            port = int(match.group(1))
            # Keep reading its log: a full pipe would stop it.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore
            return proc, port
    raise SystemExit("websockify did not start")


def open_probe(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(upgrade_request())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    return sock


def read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def round_trips(sock: socket.socket, count: int, pause_s: float) -> list[float]:
    times = []
    for i in range(count):
        payload = b"%06d" % i
        started = time.perf_counter()
        sock.sendall(frame(payload))
        head = read_exact(sock, 2)
        body = read_exact(sock, head[1] & 0x7F)
        assert body == payload, (body, payload)
        times.append(time.perf_counter() - started)
        time.sleep(pause_s)
    return times


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 1e6


def one_round(proxy: subprocess.Popen, port: int, flooders: int, probes: int, pause_s: float,
              settle_s: float) -> dict[str, float]:
    flood = _child("--role", "flooders", "--port", str(port), "--count", str(flooders))
    assert flood.stdout is not None and flood.stdin is not None
    assert flood.stdout.readline().strip() == "flooding"
    time.sleep(settle_s)
    probe = open_probe(port)
    peak = rss_mb(proxy.pid)
    times = round_trips(probe, probes, pause_s)
    peak = max(peak, rss_mb(proxy.pid))
    probe.close()
    flood.stdin.close()
    flood.wait(60)
    process = psutil.Process(proxy.pid)
    deadline = time.monotonic() + 30
    while process.num_fds() > 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the sessions' ends, and whatever follows them
    quantiles = statistics.quantiles(times, n=100)
    return {"p50_ms": quantiles[49] * 1e3, "p99_ms": quantiles[98] * 1e3, "max_ms": max(times) * 1e3,
            "peak_rss_mb": peak, "rss_after_mb": rss_mb(proxy.pid), "fds_after": process.num_fds()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("driver", "echo", "flooders"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--flooders", default="10,100,1000", help="comma-separated N, one proxy each")
    parser.add_argument("--rounds", type=int, default=1, help="flood rounds per proxy (memory after each)")
    parser.add_argument("--probes", type=int, default=300, help="round trips measured per round")
    parser.add_argument("--pause-ms", type=float, default=2.0, help="between two round trips")
    parser.add_argument("--settle-s", type=float, default=1.0, help="flooding before the measuring starts")
    parser.add_argument("--proxy-arg", action="append", default=[], help="an option for websockify")
    parser.add_argument("--tree", default=ROOT, help="run websockify from this directory (another version)")
    args = parser.parse_args()
    if args.role == "echo":
        new_loop().run_until_complete(_echo_main())
        return
    if args.role == "flooders":
        new_loop().run_until_complete(_flooders_main(args.port, args.count))
        return
    echo = _child("--role", "echo")
    assert echo.stdout is not None and echo.stdin is not None
    target_port = int(echo.stdout.readline())
    try:
        for flooders in (int(n) for n in args.flooders.split(",")):
            proxy, port = start_proxy(target_port, args.proxy_arg, args.tree)
            try:
                time.sleep(0.5)
                print(f"N={flooders}: websockify rss at start {rss_mb(proxy.pid):.0f} MB", flush=True)
                for round_number in range(1, args.rounds + 1):
                    result = one_round(proxy, port, flooders, args.probes, args.pause_ms / 1e3, args.settle_s)
                    print(f"N={flooders} round {round_number}: p50 {result['p50_ms']:.1f} ms, "
                          f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
                          f"rss peak {result['peak_rss_mb']:.0f} MB, after {result['rss_after_mb']:.0f} MB, "
                          f"fds after {result['fds_after']:.0f}", flush=True)
            finally:
                proxy.terminate()
                proxy.wait(30)
    finally:
        echo.stdin.close()
        echo.wait(10)


if __name__ == "__main__":
    main()
