"""OpenStack nova's console proxy (nova-novncproxy) on this websockify, unchanged.

nova subclasses ProxyRequestHandler and WebSocketProxy: its handler validates
the token, checks the Origin, connects to the compute host (optionally through a
CONNECT preamble), runs its RFB security proxy with the client through
recv_frames/send_frames, and hands the socket to do_proxy. Here nova 34.0.0 from
PyPI runs in an environment of its own, beside this checkout, with only the
token validation stubbed (tests/servers/nova_console.py); the console is a real
Xvnc, the clients a raw RFB handshake and noVNC in Chromium. nova's default
eventlet mode and its native threading mode both run.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from browser import Browser, visit
from helpers import ROOT, reserved_port, timeout, wait_for
from rawws import frame, read_frame, read_head, status_of, upgrade_request

ENVIRONMENT = Path(sys.prefix) / "nova-34.0.0"
SCRIPT = os.path.join(ROOT, "tests", "servers", "nova_console.py")
NOVNC = "/usr/share/novnc"
TOKEN = "a-console-token"
MODES = {"eventlet": {}, "threading": {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"}}


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], capture_output=True, text=True,
                            timeout=timeout(900))
    assert result.returncode == 0, f"pip install {' '.join(args)} failed:\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def nova_python() -> Path:
    """nova 34.0.0 with its dependencies as frozen in tests/nova_constraints.txt, then this
    checkout (editable) in place of the websockify nova asked for. Made once: about 90 s."""
    python = ENVIRONMENT / "bin" / "python"
    stamp = ENVIRONMENT / ".complete"
    wanted = (Path(ROOT, "tests", "nova_constraints.txt").read_text() + Path(ROOT, "constraints.txt").read_text())
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(ENVIRONMENT, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(ENVIRONMENT)], check=True, timeout=timeout(120))
        _pip(python, "-c", os.path.join(ROOT, "tests", "nova_constraints.txt"), "nova==34.0.0")
        _pip(python, "-c", os.path.join(ROOT, "constraints.txt"), "-e", ROOT)
        stamp.write_text(wanted)
    return python


@pytest.fixture(scope="module")
def xvnc() -> Iterator[int]:
    """A real VNC server (no VNC password: nova's security proxy offers the client None)."""
    binary = shutil.which("Xvnc")
    if binary is None:
        pytest.fail("Xvnc is needed (.ci/run installs tigervnc-standalone-server)")
    display = next(n for n in range(60, 99) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    with reserved_port() as port:
        server = subprocess.Popen([binary, f":{display}", "-rfbport", str(port), "-SecurityTypes", "None",
                                   "-geometry", "800x600"], stderr=subprocess.DEVNULL)
    wait_for(lambda: _accepts(port), 20, "Xvnc to listen")
    yield port
    server.terminate()
    server.wait(timeout(20))


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class NovaProxy:
    def __init__(self, python: Path, directory: Path, target: int, mode: str, internal_path: str = ""):
        self.lines: list[str] = []
        with reserved_port() as port:
            self.port = port
            env = {**os.environ, **MODES[mode], "NOVA_TOKEN": TOKEN, "NOVA_TARGET": f"127.0.0.1:{target}",
                   "NOVA_INTERNAL_PATH": internal_path}
            env.pop("PYTHONPATH", None)
            # oslo.log writes to standard output: read both as one stream.
            self.proc = subprocess.Popen([str(python), SCRIPT, str(port), NOVNC, str(directory / "nova.conf")],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            threading.Thread(target=self._pump, daemon=True).start()
            try:
                wait_for(lambda: "listening on" in self.log or self.proc.poll() is not None, 60, "nova-novncproxy")
                assert self.proc.poll() is None, self.log
            except BaseException:
                self.proc.kill()  # a test that fails here must not leave nova running
                self.proc.wait(timeout(5))
                raise

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout(20))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout(5))
            raise AssertionError(f"nova-novncproxy did not stop on SIGTERM:\n{self.log[-3000:]}") from None


class RfbOverWebSocket:
    """The client side of RFB 3.8 through a WebSocket, as noVNC speaks it."""

    def __init__(self, port: int, token: str = TOKEN):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(20))
        self.sock.sendall(upgrade_request(f"/?token={token}", f"Origin: http://127.0.0.1:{port}\r\n",
                                          host=f"127.0.0.1:{port}"))
        self.status = status_of(read_head(self.sock))
        self._buffer = b""
        self.close_code: int | None = None

    def read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            opcode, payload = read_frame(self.sock)
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise EOFError(f"closed with {self.close_code}")
            self._buffer += payload
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(frame(0x2, data))

    def handshake(self) -> tuple[int, int, bytes]:
        """Version, security None, ClientInit; the desktop's (width, height, name)."""
        assert self.read(12) == b"RFB 003.008\n"
        self.send(b"RFB 003.008\n")
        count = self.read(1)[0]
        assert 1 in self.read(count)  # None: nova's proxy has done the server's security already
        self.send(b"\x01")
        assert self.read(4) == b"\0\0\0\0"
        self.send(b"\x01")  # shared
        width, height = struct.unpack("!HH", self.read(4))
        self.read(16)  # pixel format
        (length,) = struct.unpack("!I", self.read(4))
        return width, height, self.read(length)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("mode", list(MODES))
def test_nova_serves_a_console_through_its_rfb_security_proxy(nova_python, xvnc, tmp_path, mode):
    proxy = NovaProxy(nova_python, tmp_path, xvnc, mode)
    try:
        client = RfbOverWebSocket(proxy.port)
        assert client.status == 101
        width, height, _ = client.handshake()
        assert (width, height) == (800, 600)
        client.send(struct.pack("!BBHHHH", 3, 0, 0, 0, 16, 16))  # FramebufferUpdateRequest: relayed by us now
        assert client.read(1) == b"\0"  # FramebufferUpdate
        client.close()
        # A token nova does not know: its handler raises, the client is closed, the proxy lives on.
        refused = RfbOverWebSocket(proxy.port, token="wrong")
        with pytest.raises(EOFError):
            try:
                refused.read(12)
            except TimeoutError:
                raise AssertionError(proxy.log[-4000:]) from None
        assert refused.close_code == 1011
        refused.close()
        # Plain HTTP goes through nova's own send_head: noVNC's page, and its guard against //.
        assert _http_status(proxy.port, "/vnc.html") == 200
        assert _http_status(proxy.port, "//app") == 400
        wait_for(lambda: "Finished security handshake" in proxy.log, 10, "nova's security proxy line")
        wait_for(lambda: "target=127.0.0.1:" in proxy.log, 10, "our session line")
    finally:
        assert proxy.stop() == 0
    assert TOKEN not in proxy.log


def _http_status(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        return status_of(read_head(sock))


class ConnectFront:
    """What nova's internal_access_path talks to: `CONNECT path`, 200, then the console."""

    def __init__(self, console: int, path: str):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[bytes] = []
        self._console, self._path = console, path
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            chunk = conn.recv(1)
            if not chunk:
                return
            head += chunk
        self.requests.append(head)
        if not head.startswith(f"CONNECT {self._path} HTTP/1.1".encode()):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            conn.close()
            return
        console = socket.create_connection(("127.0.0.1", self._console))
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        for source, sink in ((conn, console), (console, conn)):
            threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def test_nova_reaches_the_console_through_a_connect_preamble(nova_python, xvnc, tmp_path):
    front = ConnectFront(xvnc, "/console/4d2")
    proxy = NovaProxy(nova_python, tmp_path, front.port, "threading", internal_path="/console/4d2")
    try:
        client = RfbOverWebSocket(proxy.port)
        assert client.status == 101
        assert client.handshake()[:2] == (800, 600)
        client.close()
        assert front.requests and front.requests[0].startswith(b"CONNECT /console/4d2 HTTP/1.1\r\n")
    finally:
        assert proxy.stop() == 0
        front.close()


def test_novnc_in_chromium_reaches_the_desktop_through_nova(nova_python, xvnc, tmp_path):
    """As a cloud user opens a console: nova serves noVNC's page and relays to the desktop."""
    if not os.path.exists(os.path.join(NOVNC, "vnc.html")):
        pytest.fail("noVNC is needed (.ci/run installs novnc)")
    proxy = NovaProxy(nova_python, tmp_path, xvnc, "eventlet")
    browser = Browser()
    try:
        async def scenario() -> list[int]:
            url = f"http://127.0.0.1:{proxy.port}/vnc.html?autoconnect=true&path=%3Ftoken%3D{TOKEN}"
            async with asyncio.timeout(timeout(90)):
                async with visit(browser, url, str(tmp_path / "nova-novnc.png")) as page:
                    return await page.wait_for(
                        "(() => { const c = document.querySelector('#noVNC_container canvas');"
                        " return c && c.width > 0 ? [c.width, c.height] : null; })()", 60, "the VNC canvas")
        assert asyncio.run(scenario()) == [800, 600]
        assert "Finished security handshake" in proxy.log
    finally:
        browser.close()
        assert proxy.stop() == 0
