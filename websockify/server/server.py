"""The proxy server: one listener, many client connections, graceful stop."""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Optional

from ..config import Config, format_host_port
from ..proxy.target import Connector
from .connection import ClientConnection
from .listener import Listener, open_listener

log = logging.getLogger(__name__)


class ProxyServer:
    def __init__(self, config: Config, connector: Connector):
        self.config = config
        self.connector = connector
        self.connections: set[ClientConnection] = set()
        self._listener: Optional[Listener] = None
        self._loop = asyncio.get_running_loop()
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

    def _on_accept(self, sock: socket.socket, address: object) -> None:
        # Hook for TLS: peek at the first byte here and wrap the socket when it
        # is a TLS hello. Without a certificate every connection is plain.
        self._loop.create_task(self._serve_plain(sock))

    async def _serve_plain(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: ClientConnection(self), sock)
        except OSError as exc:
            log.debug("connection dropped before it started: %s", exc)
            sock.close()

    def stop_accepting(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

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
