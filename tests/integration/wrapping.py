"""Shared by the wrapping tests: websockify wrapping a real command, and finding that command's tree.

A wrapped program needs a fixed public port (websockify takes it, and rebind.so
moves the program's bind of that number), so a test cannot let websockify pick
one with port 0. `wrap` picks a port by binding port 0 and closing it; if
another process takes it before websockify binds it, websockify exits with
"Address already in use" and the whole start is tried again, a few times.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import uuid
from typing import Iterator

import psutil
from helpers import ROOT, Proxy, start_proxy, timeout, wait_for, ws_connect

SERVERS = os.path.join(ROOT, "tests", "servers")
ECHO = [sys.executable, os.path.join(SERVERS, "tcp_echo.py")]
_ATTEMPTS = 5


def marked(marker: str) -> list[int]:
    """Pids whose environment holds TEST_MARKER=marker: the wrapped tree, found without names."""
    needle = f"\0TEST_MARKER={marker}\0".encode()
    pids = []
    for proc in psutil.process_iter():
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if needle in b"\0" + f.read() + b"\0" and proc.status() != psutil.STATUS_ZOMBIE:
                    pids.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return pids


def marker_fixture() -> Iterator[str]:
    """The body of each module's `marker` fixture: a fresh marker, and no leftovers after the test."""
    value = uuid.uuid4().hex
    yield value
    leftovers = marked(value)
    for pid in leftovers:  # never leak into other tests, but report it
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes of the wrapped tree were left behind: {leftovers}"


def picked_port() -> int:
    """A port that was free a moment ago (see the module docstring for the race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(marker: str, args: tuple[str, ...], port: int, **kwargs) -> Proxy:
    """websockify with "{port}" in args replaced; the command (not websockify) carries the marker."""
    args = tuple(arg.replace("{port}", str(port)) for arg in args)
    split = args.index("--") + 1
    proxy = start_proxy(*args[:split], "env", f"TEST_MARKER={marker}", *args[split:],
                        wait_listening=False, **kwargs)
    proxy.port = port
    return proxy


def started(proxy: Proxy, seconds: float = 20) -> bool:
    """True once it listens; False if it exited because its port was taken; else an AssertionError."""
    wait_for(lambda: "listening on" in proxy.log or proxy.proc.poll() is not None, seconds,
             "websockify to listen")
    if "listening on" in proxy.log:
        return True
    wait_for(lambda: proxy.proc.poll() is not None, 10, "websockify to exit")
    if re.search(r"cannot listen on .*: Address already in use", proxy.log):
        return False
    raise AssertionError(f"websockify exited with {proxy.proc.returncode}:\n{proxy.log}")


def wrap(marker: str, *args: str, **kwargs) -> Proxy:
    """Start websockify wrapping a command on a free public port, "{port}" in args."""
    for _ in range(_ATTEMPTS):
        proxy = launch(marker, args, picked_port(), **kwargs)
        if started(proxy):
            return proxy
    raise AssertionError(f"the picked port was taken {_ATTEMPTS} times in a row")


def echo_through(url: str, payload: bytes = b"through the wrapper") -> None:
    async def scenario():
        async with asyncio.timeout(timeout(20)):
            async with ws_connect(url) as ws:
                await ws.send(payload)
                assert await ws.recv() == payload
    asyncio.run(scenario())


def stop_and_check(proxy: Proxy, marker: str, sig: int = signal.SIGTERM) -> int:
    """Stop websockify; its whole wrapped tree must go with it. Returns websockify's exit code."""
    code = proxy.stop(sig)
    wait_for(lambda: not marked(marker), 10, "the wrapped tree to be gone")
    return code


def private_address(proxy: Proxy) -> tuple[str, int]:
    """Where websockify found the wrapped service listening, from its "service ready" line."""
    match = proxy.wait_log(r"service ready on (\[?[^\s\]]+\]?):(\d+) ")
    return match.group(1).strip("[]"), int(match.group(2))


def open_gate(fifo: str) -> int:
    """Once the program waits at its --listen-gate FIFO: a write end (close it to let it listen)."""
    def try_open():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it yet
            return None
    return wait_for(try_open, 20, "the program to bind and wait at its gate")  # type: ignore[return-value]
