"""Upstream's library API as OpenStack's console proxies use it: a ProxyRequestHandler
subclass, built by WebSocketProxy(RequestHandlerClass=...), whose new_websocket_client()
talks to the client on its thread and hands the target to do_proxy()."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest
from helpers import ROOT, TcpServer, timeout, wait_for
from rawws import frame, open_websocket, read_frame, read_until_close

SCRIPT = os.path.join(ROOT, "tests", "servers", "handler_proxy.py")


class Embedded:
    """handler_proxy.py running one of its handler subclasses."""

    def __init__(self, kind: str, target: TcpServer | None, *options: str):
        host, port = ("127.0.0.1", str(target.port)) if target else ("127.0.0.1", "1")
        self.proc = subprocess.Popen([sys.executable, SCRIPT, kind, host, port, *options],
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            match = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log)
                             or self.proc.poll() is not None, 20, "the embedding program to listen")
            assert isinstance(match, re.Match), self.log
        except BaseException:
            self.proc.kill()  # a test that fails here must not leave the program running
            self.proc.wait(timeout(5))
            raise
        self.port = int(match.group(1))

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout(15))


@pytest.fixture
def target():
    received = []

    def handler(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            received.append(data)
            conn.sendall(b"echo:" + data)

    server = TcpServer(handler)
    server.received = received  # type: ignore[attr-defined]
    yield server
    server.close()


def test_a_subclass_talks_to_the_client_then_relays(target):
    proxy = Embedded("Greeting", target)
    try:
        ws = open_websocket(proxy.port, path="/console?x=1")
        assert read_frame(ws) == (0x2, b"hello /console?x=1")
        ws.sendall(frame(0x2, b"abc"))
        ws.sendall(frame(0x2, b"de"))  # the handler reads until it has 5 bytes
        assert read_frame(ws) == (0x2, b"you said abcde")
        # Sent while the handler connects: queued for it, never read by it, so the target's.
        ws.sendall(frame(0x2, b"fgh"))
        assert read_frame(ws)[1].startswith(b"echo:")  # the target echoes "[preamble]" and what follows
        ws.sendall(frame(0x2, b"relayed"))
        seen = b""
        while b"relayed" not in seen:
            seen += read_frame(ws)[1]
        ws.sendall(frame(0x8, b"\x03\xe8"))
        assert read_until_close(ws) == 1000
        ws.close()
        wait_for(lambda: "up=" in proxy.log, 10, "the session's log line")
        assert b"".join(target.received).startswith(b"[preamble]")
        assert b"".join(target.received).index(b"fgh") < b"".join(target.received).index(b"relayed")
        assert re.search(r"connecting to: 127\.0\.0\.1:\d+", proxy.log)
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.log


@pytest.mark.parametrize("kind,code", [("Refusing", 4000), ("Broken", 1011), ("Returning", 1000)])
def test_a_handler_that_does_not_relay_closes_the_client(target, kind, code):
    proxy = Embedded(kind, target)
    try:
        ws = open_websocket(proxy.port)
        assert read_until_close(ws) == code
        ws.close()
        # Another client is served the same: the process and the pool survive.
        ws = open_websocket(proxy.port)
        assert read_until_close(ws) == code
        ws.close()
    finally:
        assert proxy.stop() == 0
    if kind == "Broken":
        assert "the handler's own bug" in proxy.log


def test_a_subclass_with_its_own_init_sees_headers_and_server_attributes(target):
    proxy = Embedded("Counting", target)
    try:
        ws = open_websocket(proxy.port, extra="X-Probe: 42\r\n")
        assert read_frame(ws) == (0x2, b"42 None True x")
        ws.sendall(frame(0x2, b"ping"))
        assert read_frame(ws) == (0x2, b"echo:ping")
        ws.close()
    finally:
        assert proxy.stop() == 0


def test_a_subclass_that_overrides_send_head_answers_plain_http(tmp_path):
    """nova's pattern: its send_head guards, then the standard library's serves the file."""
    (tmp_path / "index.html").write_text("the page")
    (tmp_path / "sub").mkdir()
    big = os.urandom(3 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(big)
    proxy = Embedded("Guarding", None, f"web={tmp_path}")
    try:
        def get(path: str, method: str = "GET") -> tuple[int, bytes, bytes]:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
                sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split()[1]), head, body

        assert get("/index.html")[::2] == (200, b"the page")
        status, head, body = get("/index.html", "HEAD")
        assert status == 200 and b"Content-Length: 8" in head and body == b""
        assert get("//sub")[0] == 400  # the subclass's own answer
        assert get("/sub/")[0] == 404  # never a listing
        assert get("/missing")[0] == 404
        status, _, body = get("/big.bin")
        assert status == 200 and body == big  # written as the client reads it
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.log
