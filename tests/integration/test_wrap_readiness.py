"""Readiness of a wrapped service: rebind.so reports a listening socket, websockify waits without polling."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import psutil
import pytest
from helpers import timeout, wait_for, ws_connect
from websockets.exceptions import ConnectionClosed
from wrapping import ECHO, echo_through, marker_fixture, open_gate, private_address, stop_and_check, wrap

from websockify.config import TcpAddress
from websockify.wrap.readiness import MAX_PATH_BYTES, ReadinessSocket


@pytest.fixture
def marker():
    yield from marker_fixture()


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_ready_when_the_program_listens_not_when_it_binds_and_a_waiting_client_is_served(marker, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proxy = wrap(marker, "{port}", "--", *ECHO, "--port", "{port}", "--listen-gate", str(gate))
    try:
        writer = open_gate(str(gate))  # the program has bound its port and waits to listen

        async def scenario():
            async with asyncio.timeout(timeout(20)):
                # The handshake needs no service; the relay waits for it, within the connect timeout.
                async with ws_connect(f"ws://127.0.0.1:{proxy.port}/") as ws:
                    assert "service ready" not in proxy.log
                    os.close(writer)  # now it listens
                    await ws.send(b"waited for the service")
                    assert await ws.recv() == b"waited for the service"
        asyncio.run(scenario())
        assert proxy.log.count("service ready") == 1
    finally:
        assert stop_and_check(proxy, marker) == 143


BIND_ONLY = ("import socket, sys, time; s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); "
             "open(sys.argv[2], 'w').close(); time.sleep(600)")


def test_a_program_that_binds_but_never_listens_leaves_websockify_idle(marker, tmp_path):
    bound = tmp_path / "bound"
    proxy = wrap(marker, "{port}", "--", sys.executable, "-c", BIND_ONLY, "{port}", str(bound))
    try:
        wait_for(bound.exists, 20, "the program to bind its port")
        cpu_before, started = cpu_seconds(proxy.proc.pid), time.monotonic()

        async def not_ready():
            async with asyncio.timeout(timeout(30)):
                async with ws_connect(f"ws://127.0.0.1:{proxy.port}/") as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        await ws.recv()
                    return info.value.rcvd
        close = asyncio.run(not_ready())  # after the connect timeout, 10 s
        idle_s, cpu_s = time.monotonic() - started, cpu_seconds(proxy.proc.pid) - cpu_before
        assert (close.code, close.reason) == (1011, "Wrapped command is not ready")
        # Waiting costs nothing: no readiness polling, only the cheap waitpid() every 50 ms.
        assert idle_s >= 9.5 and cpu_s < 0.02 * idle_s, (idle_s, cpu_s)
        proxy.wait_log(rf"has not listened on port {proxy.port} after 10s")  # a timer, not a poll
        assert "service ready" not in proxy.log
    finally:
        assert stop_and_check(proxy, marker) == 143


PROBE_THEN_SERVE = """
import socket, sys
probe = socket.socket(); probe.bind(('0.0.0.0', int(sys.argv[1]))); probe.listen(); probe.close()
"""


def test_a_launcher_that_probes_the_port_then_starts_the_server(marker):
    # The probe (one process) and the server (another) each get their own private port: the last report wins.
    script = f'"$0" -c "{PROBE_THEN_SERVE}" "$1" && exec "$0" "$2" --port "$1"'
    proxy = wrap(marker, "{port}", "--", "sh", "-c", script, sys.executable, "{port}", ECHO[1])
    try:
        _, probed = private_address(proxy)
        moved = proxy.wait_log(r"service moved to 127\.0\.0\.1:(\d+)")
        assert int(moved.group(1)) != probed
        echo_through(f"ws://127.0.0.1:{proxy.port}/")
    finally:
        assert stop_and_check(proxy, marker) == 143


# -- the readiness socket on its own --------------------------------------------------------

def test_reports_arrive_through_the_event_loop_and_garbage_is_skipped(tmp_path):
    path = str(tmp_path / "notify")

    async def scenario():
        received: asyncio.Queue[TcpAddress] = asyncio.Queue()
        channel = ReadinessSocket(path, received.put_nowait)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for message in (b"garbage", b"127.0.0.1 5901", b"::1 5902"):
                sender.sendto(message, path)
        async with asyncio.timeout(timeout(10)):
            first, second = await received.get(), await received.get()
        channel.close()
        channel.close()  # closing twice is harmless
        return first, second
    assert asyncio.run(scenario()) == (TcpAddress("127.0.0.1", 5901), TcpAddress("::1", 5902))
    assert not os.path.exists(path)


def test_a_path_too_long_for_a_unix_socket_is_refused():
    async def scenario():
        ReadinessSocket("/" + "x" * MAX_PATH_BYTES, lambda address: None)
    with pytest.raises(OSError, match="longer than a Unix socket allows"):
        asyncio.run(scenario())
