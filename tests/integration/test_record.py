"""--record: one file per session, byte-exact, private; the print and replay tools."""
from __future__ import annotations

import asyncio
import base64
import os
import re
import select
import stat
import subprocess
import sys

import pytest
from helpers import ROOT, assert_one_line_error, running_proxy, timeout, wait_for, ws_connect
from websockets.exceptions import ConnectionClosedOK

from websockify.protocol.recording import CLIENT_TO_TARGET, TARGET_TO_CLIENT, parse_recording

MESSAGES = [bytes(range(256)), b"it's a \\ quote ' test\n", os.urandom(70000), b"x"]


def session(url: str, subprotocol: str = "binary") -> bytes:
    async def scenario():
        received = b""
        async with asyncio.timeout(timeout(30)):
            async with ws_connect(url, subprotocols=[subprotocol]) as ws:
                for message in MESSAGES:
                    await ws.send(base64.b64encode(message).decode() if subprotocol == "base64" else message)
                    while len(received) < sum(map(len, MESSAGES[:MESSAGES.index(message) + 1])):
                        reply = await ws.recv()
                        received += base64.b64decode(reply) if subprotocol == "base64" else reply
        return received
    return asyncio.run(scenario())


def recording(path) -> list:
    wait_for(lambda: os.path.exists(path) and "'EOF'" in open(path).read(), 10, f"{path} to be complete")
    return list(parse_recording(open(path).read()))


@pytest.mark.parametrize("subprotocol", ["binary", "base64"])
def test_recording_matches_the_traffic_byte_for_byte(tmp_path, echo_server, subprotocol):
    prefix = tmp_path / "session"
    with running_proxy("--record", str(prefix), "127.0.0.1:0", echo_server.address) as proxy:
        received = session(proxy.url, subprotocol)
        frames = recording(f"{prefix}.1")
    assert received == b"".join(MESSAGES)
    assert b"".join(f.data for f in frames if f.direction == CLIENT_TO_TARGET) == b"".join(MESSAGES)
    assert b"".join(f.data for f in frames if f.direction == TARGET_TO_CLIENT) == received
    offsets = [f.offset_ms for f in frames]
    assert offsets == sorted(offsets)
    assert stat.S_IMODE(os.stat(f"{prefix}.1").st_mode) == 0o600


def test_each_session_and_each_process_gets_its_own_file(tmp_path, echo_server):
    prefix = tmp_path / "rec"
    with running_proxy("--record", str(prefix), "127.0.0.1:0", echo_server.address) as first, \
            running_proxy("--record", str(prefix), "127.0.0.1:0", echo_server.address) as second:
        session(first.url)
        session(second.url)
        session(first.url)
        for n in (1, 2, 3):
            recording(f"{prefix}.{n}")
    assert sorted(os.listdir(tmp_path)) == ["rec.1", "rec.2", "rec.3"]


def test_bad_record_directory_is_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "websockify", "--record", str(tmp_path / "no" / "x"),
                             "127.0.0.1:0", "127.0.0.1:1"], capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, "--record: cannot write recordings")


@pytest.fixture
def recorded(tmp_path, echo_server):
    prefix = tmp_path / "session"
    with running_proxy("--record", str(prefix), "127.0.0.1:0", echo_server.address) as proxy:
        session(proxy.url)
        recording(f"{prefix}.1")
    return f"{prefix}.1"


def test_print_tool(recorded):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "record_print.py"), recorded],
                            capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 0, result.stderr
    total = sum(map(len, MESSAGES))
    assert f"{total} bytes client → target, {total} bytes target → client" in result.stdout
    assert "client → target      256 B" in result.stdout


@pytest.mark.parametrize("speed", ["1", "50"])
def test_replay_tool_reproduces_the_target_stream(recorded, speed):
    expected = b"".join(f.data for f in parse_recording(open(recorded).read()) if f.direction == TARGET_TO_CLIENT)
    replay = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "record_replay.py"), recorded,
                               "--listen", "127.0.0.1:0", "--speed", speed],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([replay.stdout], [], [], timeout(20))
        assert ready, "the replay tool did not start"
        port = int(re.search(r"ws://127.0.0.1:(\d+)/", replay.stdout.readline()).group(1))

        async def scenario():
            received = b""
            async with asyncio.timeout(timeout(30)):
                async with ws_connect(f"ws://127.0.0.1:{port}/", subprotocols=["binary"]) as ws:
                    with pytest.raises(ConnectionClosedOK):
                        while True:
                            received += await ws.recv()
            return received
        assert asyncio.run(scenario()) == expected
    finally:
        replay.terminate()
        replay.wait(timeout(10))
