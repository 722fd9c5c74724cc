"""The proxy server: its listening sockets, many client connections, graceful stop."""
from __future__ import annotations

import asyncio
import logging
import resource
import socket
import ssl
from typing import Callable, Optional

from ..config import Config
from ..errors import ConfigError
from ..protocol.http import error_response
from ..protocol.sniff import Kind, sniff
from ..proxy.plugins import Authenticator
from ..proxy.recorder import Recorder
from ..proxy.routing import TokenRouter
from ..proxy.target import Connector
from .admission import Admission, Ticket
from .connection import ClientConnection, format_peer
from .listener import Listener, ListeningSocket
from .tls import server_context

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


class ProxyServer:
    def __init__(self, config: Config, connector: Connector, sockets: list[ListeningSocket],
                 tls: Optional[ssl.SSLContext] = None, authenticator: Optional[Authenticator] = None,
                 router: Optional[TokenRouter] = None):
        self.config = config
        self.connector = connector  # the target when no token router chooses one
        self.router = router
        self.sockets = sockets
        self.connections: set[ClientConnection] = set()
        self._all_closed = asyncio.Event()
        self._listeners: list[Listener] = []
        self._servers: list[asyncio.AbstractServer] = []
        # WebSocket sessions starting and ending, for the lifetime options and status.
        self.on_session_start: Callable[[], None] = _nothing
        self.on_session_end: Callable[[], None] = _nothing
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self.authenticator = authenticator
        self._peeking: dict[socket.socket, tuple[asyncio.TimerHandle, Ticket]] = {}
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.admission = Admission(config.limits.max_connections, config.limits.max_connections_per_ip,
                                   None if nofile == resource.RLIM_INFINITY else nofile)
        if self.admission.max_connections < config.limits.max_connections:
            log.warning("the open-file limit (%d) allows %d clients at once: --max-connections %d lowered",
                        nofile, self.admission.max_connections, config.limits.max_connections)
        self.recorder: Optional[Recorder] = Recorder(config.record) if config.record else None
        # The Flash policy names one port: the first TCP one.
        self.port = next((s.port for s in sockets if s.port is not None), 0)

    async def start(self, announce: bool = True) -> None:
        """Serve every listening socket; `announce` logs where (a worker of many does not)."""
        for listening in self.sockets:
            if self._tls is None:
                # The event loop accepts (in C with uvloop) and builds each connection.
                self._servers.append(await self._loop.create_server(
                    lambda: ClientConnection(self), sock=listening.sock, backlog=self.config.listen_backlog))
            else:
                # TLS and plain share the port: our own accept loop peeks at the first byte.
                listener = Listener(listening.sock, self._on_accept)
                listener.start()
                self._listeners.append(listener)
            if announce:
                log.info("listening on %s", listening)
        if not announce:
            return
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
        ip = address[0] if isinstance(address, tuple) else ""
        ticket = self.admission.admit(ip)
        if ticket is None:
            log.warning("%s: dropped: %d connections open", format_peer(address), self.admission.total)
            sock.close()
            return
        # One deadline from here to the relay, whatever the stages in between.
        deadline = self._loop.time() + self.config.handshake_timeout_s
        # TLS and plain share the port: look at the first byte before a
        # transport (plain or TLS) takes the socket.
        timer = self._loop.call_at(deadline, self._drop_silent, sock, address)
        self._peeking[sock] = (timer, ticket)
        self._loop.add_reader(sock.fileno(), self._first_byte, sock, address, ticket, deadline)

    def _first_byte(self, sock: socket.socket, address: object, ticket: Ticket, deadline: float) -> None:
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        self._stop_peeking(sock)
        if not first:
            self._close(sock, ticket)
        elif sniff(first) is Kind.TLS:
            if ticket.refusal is not None:  # a TLS handshake is too dear to spend on a 503
                log.info("%s: TLS connection refused: %s", format_peer(address), ticket.refusal)
                self._close(sock, ticket)
            else:
                self._loop.create_task(self._serve(sock, self._tls, address, ticket, deadline))
        elif self.config.tls.ssl_only:
            log.info("%s: plain connection refused (--ssl-only)", format_peer(address))
            if sniff(first) is Kind.HTTP:
                try:
                    sock.send(error_response(403, "this port accepts TLS only (https:// or wss://)"))
                except OSError:
                    pass
            self._close(sock, ticket)
        else:
            self._loop.create_task(self._serve(sock, None, address, ticket, deadline))

    def _drop_silent(self, sock: socket.socket, address: object) -> None:
        log.info("%s: dropped: sent nothing within %gs", format_peer(address), self.config.handshake_timeout_s)
        ticket = self._stop_peeking(sock)
        if ticket is not None:
            self._close(sock, ticket)

    def _stop_peeking(self, sock: socket.socket) -> Optional[Ticket]:
        entry = self._peeking.pop(sock, None)
        if entry is None:
            return None
        timer, ticket = entry
        timer.cancel()
        self._loop.remove_reader(sock.fileno())
        return ticket

    @staticmethod
    def _close(sock: socket.socket, ticket: Ticket) -> None:
        sock.close()
        ticket.release()

    async def _serve(self, sock: socket.socket, tls: Optional[ssl.SSLContext], address: object,
                     ticket: Ticket, deadline: float) -> None:
        try:
            await self._loop.connect_accepted_socket(
                lambda: ClientConnection(self, ticket, deadline), sock, ssl=tls,
                ssl_handshake_timeout=max(deadline - self._loop.time(), 0.001) if tls else None)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or exc.__class__.__name__
            if tls is not None:
                log.info("%s: TLS handshake failed: %s", format_peer(address), reason)
            else:
                log.debug("connection dropped before it started: %s", reason)
            self._close(sock, ticket)

    def connection_closed(self, connection: ClientConnection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._all_closed.set()

    def stop_accepting(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for server in self._servers:
            server.close()
        self._servers.clear()
        for listening in self.sockets:
            listening.close()
        for sock in list(self._peeking):
            ticket = self._stop_peeking(sock)
            if ticket is not None:
                self._close(sock, ticket)

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, close every session with 1001, wait for them within the timeout."""
        self.stop_accepting()
        for connection in list(self.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(timeout_s):
                while self.connections:
                    self._all_closed.clear()
                    await self._all_closed.wait()
        except TimeoutError:
            log.warning("%d connection(s) did not close in time; dropping them", len(self.connections))
            for connection in list(self.connections):
                connection.abort()
            await asyncio.sleep(0)
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)  # joins the writer thread: not on the loop
