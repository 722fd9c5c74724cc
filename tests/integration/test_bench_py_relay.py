"""bench/py_relay.py, the benchmark's floor column: it must really relay, or its
figures would flatter the floor; and it must leave no process behind."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid

import pytest
from helpers import (
    ROOT,
    TcpServer,
    accepts,
    echo_handler,
    pattern_bytes,
    processes_with,
    reserved_port,
    timeout,
    wait_for,
)

RELAY = os.path.join(ROOT, "bench", "py_relay.py")


def _echoed(port: int, payload: bytes) -> bytes:
    """Sends payload from a thread while reading the echo, so no buffer size can deadlock the two."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as client:
        sender = threading.Thread(target=client.sendall, args=(payload,), daemon=True)
        sender.start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = client.recv(len(payload) - len(got))
            if not chunk:
                break
            got += chunk
        sender.join(timeout(10))
        client.shutdown(socket.SHUT_WR)  # the relay ends the target, which ends the client
        assert client.recv(1) == b""
        return bytes(got)


@pytest.mark.parametrize("workers", [1, 2])
def test_relays_every_byte_both_ways_and_stops_with_all_its_processes(workers: int) -> None:
    marker = f"PY_RELAY_TEST={uuid.uuid4().hex}"
    echo = TcpServer(echo_handler)
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    # Held until the test ends: the relay binds it with SO_REUSEADDR, as a listener does.
    with reserved_port() as port:
        relay = subprocess.Popen([sys.executable, RELAY, "--workers", str(workers), f"127.0.0.1:{port}",
                                  f"127.0.0.1:{echo.port}"], env=env, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: accepts(port), 20, "the relay to listen")
            assert len(wait_for(lambda: len(processes_with(marker)) == workers and processes_with(marker), 10,
                                f"{workers} relay processes")) == workers
            payload = pattern_bytes(0, 3 * 1024 * 1024 + 17)  # many reads, and flow control both ways
            for _ in range(4 * workers):  # the kernel hands connections to either process
                assert _echoed(port, payload) == payload
        finally:
            relay.send_signal(signal.SIGTERM)
            assert relay.wait(timeout(10)) == 0
            echo.close()
    wait_for(lambda: not processes_with(marker), 10, "every relay process to exit")
    assert relay.stderr is not None and relay.stderr.read() == b""
