"""The proxy server: one listener, many client connections, graceful stop."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Optional

from ..config import Config, format_host_port
from ..errors import ConfigError
from ..protocol.http import error_response
from ..protocol.sniff import Kind, sniff
from ..proxy.plugins import Authenticator
from ..proxy.recorder import Recorder
from ..proxy.target import Connector
from .connection import ClientConnection, format_peer
from .listener import Listener, open_listener
from .tls import server_context

log = logging.getLogger(__name__)


class ProxyServer:
    def __init__(self, config: Config, connector: Connector, tls: Optional[ssl.SSLContext] = None,
                 authenticator: Optional[Authenticator] = None):
        self.config = config
        self.connector = connector
        self.connections: set[ClientConnection] = set()
        self._listener: Optional[Listener] = None
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self.authenticator = authenticator
        self._peeking: dict[socket.socket, asyncio.TimerHandle] = {}
        self.recorder: Optional[Recorder] = Recorder(config.record) if config.record else None
        self.port = 0

    def start(self) -> None:
        sock = open_listener(self.config.listen, self.config.prefer_ipv6, self.config.listen_backlog)
        host, self.port = sock.getsockname()[:2]
        self._listener = Listener(sock, self._on_accept)
        self._listener.start()
        log.info("listening on %s", format_host_port(host, self.port))
        if self.config.web_dir:
            log.info("serving web files from %s", self.config.web_dir)
        log.info("proxying to %s", self.connector.description)

    def reload_tls(self) -> None:
        """SIGHUP: a renewed certificate applies to new connections; live ones keep theirs."""
        if not self.config.tls.enabled:
            return
        try:
            self._tls = server_context(self.config.tls)
        except ConfigError as exc:
            log.error("certificate not reloaded, keeping the previous one: %s", exc)
            return
        log.info("certificate reloaded from %s", self.config.tls.cert)

    def _on_accept(self, sock: socket.socket, address: object) -> None:
        if self._tls is None:
            self._loop.create_task(self._serve(sock, None))
            return
        # TLS and plain share the port: look at the first byte before a
        # transport (plain or TLS) takes the socket.
        self._peeking[sock] = self._loop.call_later(
            self.config.handshake_timeout_s, self._drop_silent, sock, address)
        self._loop.add_reader(sock.fileno(), self._first_byte, sock, address)

    def _first_byte(self, sock: socket.socket, address: object) -> None:
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        self._stop_peeking(sock)
        if not first:
            sock.close()
        elif sniff(first) is Kind.TLS:
            self._loop.create_task(self._serve(sock, self._tls, address))
        elif self.config.tls.ssl_only:
            log.info("%s: plain connection refused (--ssl-only)", format_peer(address))
            if sniff(first) is Kind.HTTP:
                try:
                    sock.send(error_response(403, "this port accepts TLS only (https:// or wss://)"))
                except OSError:
                    pass
            sock.close()
        else:
            self._loop.create_task(self._serve(sock, None))

    def _drop_silent(self, sock: socket.socket, address: object) -> None:
        log.info("%s: dropped: sent nothing within %.0fs", format_peer(address), self.config.handshake_timeout_s)
        self._stop_peeking(sock)
        sock.close()

    def _stop_peeking(self, sock: socket.socket) -> None:
        timer = self._peeking.pop(sock, None)
        if timer is not None:
            timer.cancel()
            self._loop.remove_reader(sock.fileno())

    async def _serve(self, sock: socket.socket, tls: Optional[ssl.SSLContext], address: object = None) -> None:
        try:
            await self._loop.connect_accepted_socket(
                lambda: ClientConnection(self), sock, ssl=tls,
                ssl_handshake_timeout=self.config.handshake_timeout_s if tls else None)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or exc.__class__.__name__
            if tls is not None:
                log.info("%s: TLS handshake failed: %s", format_peer(address), reason)
            else:
                log.debug("connection dropped before it started: %s", reason)
            sock.close()

    def stop_accepting(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in list(self._peeking):
            self._stop_peeking(sock)
            sock.close()

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, close every session with 1001, wait for them within the timeout."""
        self.stop_accepting()
        for connection in list(self.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(timeout_s):
                while self.connections:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            log.warning("%d connection(s) did not close in time; dropping them", len(self.connections))
            for connection in list(self.connections):
                connection.abort()
            await asyncio.sleep(0)
        if self.recorder is not None:
            self.recorder.close()
