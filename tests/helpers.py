"""Real peers for the tests: the proxy as a child process, TCP servers in threads,
and WebSocket clients from the websockets library. Every wait is bounded."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from websockets.asyncio.client import connect as ws_connect_raw

TIMEOUT_SCALE = float(os.environ.get("WEBSOCKIFY_TEST_TIMEOUT_SCALE", "1"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timeout(seconds: float) -> float:
    """A test timeout, scaled for slow machines by WEBSOCKIFY_TEST_TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE


def ws_connect(uri: str, **kwargs):
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("open_timeout", timeout(10))
    kwargs.setdefault("ping_interval", None)
    return ws_connect_raw(uri, **kwargs)


def wait_for(predicate: Callable[[], object], seconds: float, what: str) -> object:
    deadline = time.monotonic() + timeout(seconds)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.02)


# -- the proxy as a real process -------------------------------------------------

@dataclass
class Proxy:
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    client_tls: object | None = None  # an ssl.SSLContext when a test talks TLS to it

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/"

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://")

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_log(self, pattern: str, seconds: float = 10) -> re.Match:
        return wait_for(lambda: re.search(pattern, self.log), seconds, f"log line {pattern!r}")  # type: ignore

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout(5))
            raise AssertionError("websockify did not stop within 15s of SIGTERM") from None


def start_proxy(*args: str, env: dict | None = None, wait_listening: bool = True,
                cwd: str | None = None, preexec_fn: Callable[[], None] | None = None) -> Proxy:
    proc = subprocess.Popen(
        [sys.executable, "-m", "websockify", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, cwd=cwd, preexec_fn=preexec_fn,
    )
    proxy = Proxy(proc)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            proxy.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    if wait_listening:
        try:
            match = wait_for(
                lambda: re.search(r"listening on (\[?[^\s\]]+\]?):(\d+)", proxy.log) or proc.poll() is not None,
                20, "websockify to listen")
        except AssertionError:
            proxy.stop()
            raise
        if not isinstance(match, re.Match):
            raise AssertionError(f"websockify exited with {proc.returncode}:\n{proxy.log}")
        proxy.host = match.group(1).strip("[]")
        if proxy.host in ("0.0.0.0", "::"):
            proxy.host = "127.0.0.1"
        proxy.port = int(match.group(2))
    return proxy


@contextlib.contextmanager
def running_proxy(*args: str, **kwargs) -> Iterator[Proxy]:
    proxy = start_proxy(*args, **kwargs)
    try:
        yield proxy
    finally:
        proxy.stop()


# -- TCP servers in threads ----------------------------------------------------------

class TcpServer:
    """A threaded TCP server on loopback; `handler(conn)` runs per connection."""

    def __init__(self, handler: Callable[[socket.socket], None], host: str = "127.0.0.1",
                 family: int = socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.address = f"{host}:{self.port}" if family == socket.AF_INET else f"[{host}]:{self.port}"
        self._handler = handler
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._handler(conn)
            except OSError:
                pass

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout(5))


def echo_handler(conn: socket.socket) -> None:
    while True:
        data = conn.recv(262144)
        if not data:
            return
        conn.sendall(data)


class SinkRecorder:
    """A handler that reads until EOF and reports (length, sha256) of what it got."""

    def __init__(self) -> None:
        self.results: "queue.Queue[tuple[int, str]]" = queue.Queue()

    def __call__(self, conn: socket.socket) -> None:
        digest, total = hashlib.sha256(), 0
        while True:
            data = conn.recv(262144)
            if not data:
                break
            digest.update(data)
            total += len(data)
        self.results.put((total, digest.hexdigest()))

    def get(self, seconds: float = 10) -> tuple[int, str]:
        return self.results.get(timeout=timeout(seconds))


def pattern_bytes(offset: int, length: int) -> bytes:
    """A deterministic stream: byte i is (i * 7 + i // 251) mod 256, so shifts show."""
    return bytes(((i * 7 + i // 251) & 0xFF) for i in range(offset, offset + length))


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port now (one probe connection)."""
    try:
        socket.create_connection((host, port), timeout=timeout(2)).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    """A port that was free a moment ago. Racy: another process may take it before
    it is used. Prefer port 0 read back, or reserved_port() for a fixed number."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A port number held for the block: bound on 0.0.0.0 with SO_REUSEADDR, never listening.

    Connections to it are refused until a socket listens on it; only a socket that
    also sets SO_REUSEADDR (websockify's listener does) may bind it, and the kernel
    hands it to no one else (bind to port 0, outgoing connections) meanwhile.
    """
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", 0))
        yield holder.getsockname()[1]


def unsent_bytes(sock: "socket.socket | int") -> int:
    """Bytes in the kernel's send queue of `sock` (a socket or its descriptor): written,
    not yet acknowledged by the peer. It stays put when the peer does not read."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    return int.from_bytes(fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"), sys.byteorder)


def unread_bytes(sock: "socket.socket | int") -> int:
    """Bytes in the kernel's receive queue of `sock`: arrived, not yet read."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)


def wait_steady(sample: Callable[[], object], seconds: float, what: str, polls: int = 25,
                interval: float = 0.02) -> object:
    """Wait until `sample()` gives the same truthy value `polls` times in a row.

    For states that show as numbers that stop moving, such as buffers that have
    filled up: `sample` returns None while the state is not reached yet.
    """
    deadline = time.monotonic() + timeout(seconds)
    last, same = None, 0
    while True:
        value = sample()
        same = same + 1 if value and value == last else 1
        last = value
        if value and same >= polls:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}; last sample {value!r}")
        time.sleep(interval)


def assert_one_line_error(result: subprocess.CompletedProcess, message: str, code: int = 2) -> None:
    """The CLI contract for bad input: exit code 2, one line naming the problem, no traceback."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("websockify: error: ") and message in lines[0], lines[0]


# -- plain HTTP(S) requests -----------------------------------------------------------

def http(proxy, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request over a fresh connection: https:// when the proxy fixture has a TLS context."""
    context = getattr(proxy, "client_tls", None)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as raw:
        sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def get(proxy, path: str, method: str = "GET", extra: str = "") -> tuple[int, dict[str, str], bytes]:
    return http(proxy, f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode("latin-1"))


def processes_with(marker: str) -> list[int]:
    """Pids whose environment carries `marker` (NAME=VALUE): every process a test
    started, however detached, found without trusting names."""
    needle = f"\0{marker}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as environ:
                    if needle in b"\0" + environ.read() + b"\0":
                        found.append(int(entry))
            except OSError:
                pass
    return found
