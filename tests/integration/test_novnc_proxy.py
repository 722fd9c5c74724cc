"""noVNC's own launcher (utils/novnc_proxy from Debian's novnc) runs us with its options."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import pytest
from helpers import accepts, processes_with, timeout, wait_for, ws_connect

LAUNCHER = "/usr/share/novnc/utils/novnc_proxy"


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_novnc_proxy_with_heartbeat_in_front_of_xvnc(tmp_path):
    xvnc = shutil.which("Xvnc")
    if xvnc is None or not os.access(LAUNCHER, os.X_OK):
        pytest.fail("Xvnc and noVNC are needed (.ci/run installs tigervnc-standalone-server and novnc)")
    display = next(n for n in range(40, 99) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    vnc_port, web_port = _port(), _port()
    marker = f"WEBSOCKIFY_TEST_RUN={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1],
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    server = subprocess.Popen([xvnc, f":{display}", "-rfbport", str(vnc_port), "-SecurityTypes", "None",
                               "-geometry", "320x240"], stderr=subprocess.DEVNULL, env=env)
    launcher = None
    try:
        wait_for(lambda: accepts(vnc_port), 30, "Xvnc")
        launcher = subprocess.Popen([LAUNCHER, "--listen", str(web_port), "--vnc", f"localhost:{vnc_port}",
                                     "--heartbeat", "30", "--idle-timeout", "600", "--timeout", "0"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    start_new_session=True)
        wait_for(lambda: accepts(web_port), 30, "novnc_proxy's websockify")
        ours = [pid for pid in processes_with(marker) if b"websockify" in open(f"/proc/{pid}/cmdline", "rb").read()
                and b"--heartbeat\x0030" in open(f"/proc/{pid}/cmdline", "rb").read()]
        assert ours, "novnc_proxy did not run this websockify with --heartbeat 30"

        async def greeting() -> bytes:
            async with asyncio.timeout(timeout(20)):
                async with ws_connect(f"ws://127.0.0.1:{web_port}/websockify", subprotocols=["binary"]) as ws:
                    return await ws.recv()
        assert asyncio.run(greeting()).startswith(b"RFB 003.00")
        with socket.create_connection(("127.0.0.1", web_port), timeout=timeout(10)) as sock:
            sock.sendall(b"GET /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"
    finally:
        if launcher is not None:
            os.killpg(launcher.pid, signal.SIGTERM)  # Ctrl-C at the launcher: its trap stops us
            launcher.wait(timeout(20))
        server.terminate()
        server.wait(timeout(20))
    wait_for(lambda: not processes_with(marker), 20, "every process of the run to be gone")
