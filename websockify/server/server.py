"""The proxy server: its listening sockets, many client connections, graceful stop.

It builds one ConnectionContext (context.py), all its connections see of it.
Plain listeners are served by the event loop's own server (it accepts in C with
uvloop); with a certificate, our accept loop (listener.py) peeks at each
client's first byte, so TLS and plain share the port. Either way the gate
(gate.py) admits each client and starts its deadline.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import resource
import socket
import ssl
from typing import Callable

from ..access_lists import trusts
from ..config import Config
from ..errors import ConfigError, Refusal
from ..metrics import meter
from ..protocol.http import error_response
from ..protocol.sniff import Kind, sniff, starts_like_http
from ..proxy.plugins import Authenticator
from ..proxy.recorder import Recorder
from ..proxy.routing import TokenRouter
from ..proxy.target import Connector
from ..service.log_throttle import ThrottledLog
from .admission import Admission, Ticket
from .connection import ClientConnection
from .context import ConnectionContext, OpenConnections
from .gate import Entry, Gate, time_left_s
from .handler_threads import HandlerThreads
from .listener import Listener, ListeningSocket
from .peer import format_peer
from .proxy_intake import ProxyIntake
from .read_buffer import SharedReadBuffer
from .tls import server_context

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


class ProxyServer:
    def __init__(self, config: Config, connector: Connector, sockets: list[ListeningSocket],
                 tls: ssl.SSLContext | None = None, authenticator: Authenticator | None = None,
                 router: TokenRouter | None = None, *,
                 on_session_start: Callable[[], None] = _nothing, on_session_end: Callable[[], None] = _nothing,
                 handlers: HandlerThreads | None = None):
        """`on_session_start`, `on_session_end`: a WebSocket session started, ended (for
        the lifetime options and status)."""
        self.config = config
        self.sockets = sockets
        self._listeners: list[Listener] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._peeking: dict[socket.socket, tuple[asyncio.TimerHandle, Ticket]] = {}
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.admission = Admission(config.limits.max_connections, config.limits.max_connections_per_ip,
                                   None if nofile == resource.RLIM_INFINITY else nofile)
        if self.admission.max_connections < config.limits.max_connections:
            log.warning("the open-file limit (%d) allows %d clients at once: --max-connections %d lowered",
                        nofile, self.admission.max_connections, config.limits.max_connections)
        self._gate = Gate(self.admission, config.handshake_timeout_s, self._loop.time, self._loop.call_at)
        self.connections = OpenConnections()
        self._intake = (ProxyIntake(self._loop, config.handshake_timeout_s,
                                    functools.partial(trusts, config.trusted_proxies), self._on_accept)
                        if config.proxy_protocol else None)
        self._tls_failed = ThrottledLog(log, logging.INFO, "TLS handshake failed", self._loop.time, self._loop.call_at)
        self.context = ConnectionContext(
            config=config,
            connector=connector,
            gate=self._gate,
            read_buffer=SharedReadBuffer(),
            connections=self.connections,
            authenticator=authenticator,
            router=router,
            recorder=Recorder(config.record) if config.record else None,
            flash_policy_port=next((s.port for s in sockets if s.port is not None), 0),
            on_session_start=on_session_start,
            on_session_end=on_session_end,
            handlers=handlers,
        )

    @property
    def connector(self) -> Connector:
        """The target when no token router chooses one."""
        return self.context.connector

    @property
    def router(self) -> TokenRouter | None:
        return self.context.router

    async def start(self, announce: bool = True) -> None:
        """Serve every listening socket; `announce` logs where (a worker of many does not)."""
        context = self.context
        accept = self._on_accept if self._intake is None else self._intake.accept
        for listening in self.sockets:
            if self._tls is None and self._intake is None:
                # The event loop accepts (in C with uvloop) and builds each connection; the
                # connection has the gate admit it once it knows its peer.
                self._servers.append(await self._loop.create_server(
                    lambda: ClientConnection(context), sock=listening.sock, backlog=self.config.listen_backlog))
            else:
                # TLS and plain share the port, or a PROXY header comes first: our own
                # accept loop looks at the first bytes before a transport takes the socket.
                listener = Listener(listening.sock, accept)
                listener.start()
                self._listeners.append(listener)
            if announce:
                log.info("listening on %s", listening)
        if not announce:
            return
        if self.config.web_dir:
            log.info("serving web files from %s", self.config.web_dir)
        log.info("proxying to %s", context.connector.description)

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
        entry = self._gate.admit(address)
        if entry is None:
            sock.close()
            return
        # TLS and plain share the port: look at the first byte before a
        # transport (plain or TLS) takes the socket.
        timer = self._loop.call_at(entry.deadline, self._drop_silent, sock, address)
        self._peeking[sock] = (timer, entry.ticket)
        entry.ticket.on_evict = lambda: self._drop_peeking(sock)
        self._loop.add_reader(sock.fileno(), self._first_byte, sock, address, entry)

    def _first_byte(self, sock: socket.socket, address: object, entry: Entry) -> None:
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        self._stop_peeking(sock)
        ticket = entry.ticket
        if not first:
            self._close(sock, ticket)
        elif sniff(first) is Kind.TLS:
            if ticket.refusal is not None:  # a TLS handshake is too dear to spend on a 503
                log.info("%s: TLS connection refused: %s", format_peer(address), ticket.refusal)
                meter().handshake_failed(Refusal.LIMIT)
                self._close(sock, ticket)
            else:
                self._start_serving(sock, self._tls, address, entry)
        elif self.config.tls.ssl_only:
            log.info("%s: plain connection refused (--ssl-only)", format_peer(address))
            meter().handshake_failed(Refusal.TLS)
            if starts_like_http(first):
                try:
                    sock.send(error_response(403, "this port accepts TLS only (https:// or wss://)"))
                except OSError:
                    pass
            self._close(sock, ticket)
        else:
            self._start_serving(sock, None, address, entry)

    def _start_serving(self, sock: socket.socket, tls: ssl.SSLContext | None, address: object,
                       entry: Entry) -> None:
        task = self._loop.create_task(self._serve(sock, tls, address, entry))
        # Evicted in its TLS handshake (or before it began): the transport being made is
        # closed with the task, and the socket once the task is done.
        entry.ticket.on_evict = lambda: None if task.cancel() else None
        task.add_done_callback(lambda done: self._close(sock, entry.ticket) if done.cancelled() else None)

    def _drop_silent(self, sock: socket.socket, address: object) -> None:
        self._gate.timed_out("%s: dropped: sent nothing within %gs", format_peer(address),
                             self.config.handshake_timeout_s)
        meter().handshake_failed(Refusal.TIMEOUT)
        self._drop_peeking(sock)

    def _drop_peeking(self, sock: socket.socket) -> None:
        ticket = self._stop_peeking(sock)
        if ticket is not None:
            self._close(sock, ticket)

    def _stop_peeking(self, sock: socket.socket) -> Ticket | None:
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

    async def _serve(self, sock: socket.socket, tls: ssl.SSLContext | None, address: object,
                     entry: Entry) -> None:
        context = self.context
        try:
            await self._loop.connect_accepted_socket(
                lambda: ClientConnection(context, entry), sock, ssl=tls,
                ssl_handshake_timeout=time_left_s(entry.deadline, self._loop.time()) if tls else None)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or exc.__class__.__name__
            if tls is not None:
                self._tls_failed("%s: TLS handshake failed: %s", format_peer(address), reason)
                meter().handshake_failed(Refusal.TLS)
            else:
                log.debug("connection dropped before it started: %s", reason)
            self._close(sock, entry.ticket)

    def stop_accepting(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for server in self._servers:
            server.close()
        self._servers.clear()
        for listening in self.sockets:
            listening.close()
        if self._intake is not None:
            self._intake.close()
        for sock in list(self._peeking):
            ticket = self._stop_peeking(sock)
            if ticket is not None:
                self._close(sock, ticket)

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, close every session with 1001, wait for them within the timeout."""
        self.stop_accepting()
        for connection in self.connections:
            connection.shutdown()
        try:
            async with asyncio.timeout(timeout_s):
                await self.connections.all_closed()
        except TimeoutError:
            log.warning("%d connection(s) did not close in time; dropping them", len(self.connections))
            for connection in self.connections:
                connection.abort()
            await asyncio.sleep(0)
        recorder = self.context.recorder
        if recorder is not None:
            await asyncio.to_thread(recorder.close)  # joins the writer thread: not on the loop
