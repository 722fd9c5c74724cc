"""Real token stores for the token plugin tests: a redis-server child process and
an HTTP token API in a thread. Every wait is bounded."""
from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time

import pytest
import redis
from helpers import free_port, timeout, wait_for


class RedisServer:
    """redis-server listening on a Unix socket in `directory`, and on TCP when `tcp`.

    Redis takes its TCP port on the command line, so a free port is probed and the
    start retried with another one if something took it in between. stop() then
    start() reuses the socket path and the port, as a restarted Redis would.
    """

    def __init__(self, directory: str, tcp: bool = False, password: str | None = None,
                 tls_dir: str | None = None):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        self.binary = binary
        self.directory = directory
        self.socket_path = os.path.join(directory, "redis.sock")
        self.password = password
        self.tcp = tcp or tls_dir is not None
        self.tls_dir = tls_dir  # holds server.crt, server.key and ca.pem (tests/certs.py): TCP is TLS
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        restart = bool(self.port)
        for _ in range(1 if restart or not self.tcp else 5):
            if self.tcp and not restart:
                self.port = free_port()
            if self._start_once():
                return self
            self._kill()
        raise AssertionError(f"redis-server did not start:\n{self.log}")

    def _start_once(self) -> bool:
        args = [self.binary, "--port", "0" if self.tls_dir else str(self.port), "--bind", "127.0.0.1", "-::1",
                "--unixsocket", self.socket_path, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", self.directory,
                "--logfile", os.path.join(self.directory, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls_dir:
            args += ["--tls-port", str(self.port), "--tls-auth-clients", "no",
                     "--tls-cert-file", os.path.join(self.tls_dir, "server.crt"),
                     "--tls-key-file", os.path.join(self.tls_dir, "server.key"),
                     "--tls-ca-cert-file", os.path.join(self.tls_dir, "ca.pem")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout(15)
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.client().ping():
                    return True
            except (redis.exceptions.ConnectionError, OSError):
                pass
            time.sleep(0.02)
        return False

    def client(self, db: int = 0) -> "redis.Redis":
        """A plain synchronous client over the Unix socket, for the tests' own reads and writes."""
        return redis.Redis(unix_socket_path=self.socket_path, password=self.password, db=db,
                           socket_timeout=timeout(5), socket_connect_timeout=timeout(5))

    def set(self, key: str, value: str, db: int = 0) -> None:
        with self.client(db) as client:
            assert client.set(key, value)

    def stop(self) -> None:
        self._kill()
        wait_for(lambda: not os.path.exists(self.socket_path), 10, "redis-server to remove its socket")

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout(5))

    @property
    def log(self) -> str:
        try:
            with open(os.path.join(self.directory, "redis.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return "(no log)"


class TokenApi:
    """An HTTP token API in a thread. `routes` maps a request path to (status,
    body), anything else is 404; every request path is recorded in `paths`.
    `delay` holds each answer back, to play a slow API."""

    def __init__(self, routes: dict[str, tuple[int, bytes]] | None = None, delay: float = 0.0):
        self.routes = dict(routes or {})
        self.delay = delay
        self.paths: list[str] = []
        self.release = threading.Event()  # set to cut a delay short when the test is over
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                api.paths.append(self.path)
                if api.delay:
                    api.release.wait(api.delay)
                status, body = api.routes.get(self.path, (404, b"no such token"))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what a slow API test wants

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout(5))
