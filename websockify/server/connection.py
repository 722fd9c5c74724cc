"""One accepted client: sniff its first bytes, read its request, then hand it on.

A WebSocket upgrade becomes a Relay (proxy/pump.py); a plain GET/HEAD goes to
the static file server; a Flash policy request gets the policy; anything else
gets an HTTP error or is dropped. One deadline, set when the socket was
admitted (gate.py), covers everything before the relay: TLS, the request head,
the origin check, authentication, the token and a Hixie-76 key. All a
connection knows of its server is its ConnectionContext (context.py).
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Callable, cast

from ..access_lists import trusts
from ..errors import CloseCode, HttpError, Refusal
from ..metrics import meter
from ..protocol import hixie
from ..protocol import sniff as sniffing
from ..protocol.forwarded import Source, client_address
from ..protocol.handshake import perform_handshake
from ..protocol.http import RequestHead, RequestReader, auth_headers, error_response, host_allowed, origin_allowed
from ..protocol.logsafe import printable
from ..protocol.recording import about_line
from ..protocol.token_request import printable_target, redact, token_from_host, token_from_target
from ..protocol.websocket import RelaySession, WebSocketSession
from ..proxy.plugins import PluginTarget, plugin_target
from ..proxy.pump import Relay
from ..proxy.session_report import SessionFacts
from ..proxy.target import Connector
from ..proxy.target_header import HeaderConnector, proxy_header
from . import web
from .admission import Ticket
from .context import ConnectionContext
from .gate import Entry, time_left_s
from .handler_http import HttpExchange
from .handler_session import HandlerSession
from .peer import client_text, format_peer, proxy_text, refusal_record
from .tls import peer_common_name

log = logging.getLogger(__name__)

__all__ = ["ClientConnection", "format_peer"]

_FORWARDED_SOURCES = {"x-forwarded-for": Source.X_FORWARDED_FOR, "forwarded": Source.FORWARDED,
                      "x-real-ip": Source.X_REAL_IP}

# A plugin answers a little before the deadline, so a stuck one still gets the client an answer.
_PLUGIN_MARGIN_S, _PLUGIN_FLOOR_S = 0.1, 0.01


class ClientConnection(asyncio.BufferedProtocol):
    """Built by the accept loop with its Entry (TLS sniffing: admitted before), or by
    the event loop's own server (plain listeners): then the gate admits it here."""

    __slots__ = ("_address", "_buffer", "_connector", "_context", "_deadline", "_deadline_at", "_finished", "_handler",
                 "_hixie", "_lent", "_peer", "_reader", "_reads", "_relay", "_sniffed", "_task", "_ticket",
                 "_token_used", "_transport", "_writable")

    def __init__(self, context: ConnectionContext, entry: Entry | None = None):
        self._context = context
        self._reads = context.read_buffer  # a slot of its own: read on every read
        self._ticket: Ticket | None = entry.ticket if entry is not None else None
        self._deadline_at = entry.deadline if entry is not None else 0.0  # loop time by which the relay must start
        self._address: object = entry.client if entry is not None else None  # the client's, not a balancer's
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._buffer = b""
        self._lent = self._reads.view  # the buffer of the read in progress
        self._sniffed = False
        limits = context.config.limits
        # Until the head is read; dropped then: llhttp's state and the raw headers
        # would stay with every open session.
        self._reader: RequestReader | None = RequestReader(limits.max_header_bytes, limits.max_headers)
        self._relay: Relay | None = None
        self._task: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._finished = False
        self._writable: asyncio.Event | None = None  # made for a file sender only
        self._hixie: tuple[RequestHead, bytearray] | None = None  # head, bytes after it
        self._connector: Connector = context.connector  # a token may choose another
        self._handler: HandlerSession | None = None  # an embedding program's handler serves the client
        self._token_used: str | None = None  # the token that chose the target, for the session's end

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        address = self._address if self._address is not None else transport.get_extra_info("peername")
        self._address = address
        self._peer = format_peer(address)
        if self._ticket is None:  # a plain listener's: not admitted yet
            entry = self._context.gate.admit(address)
            if entry is None:
                self._finished = True
                self._transport.abort()
                return
            self._ticket, self._deadline_at = entry.ticket, entry.deadline
        self._ticket.on_evict = self._evicted
        self._context.connections.add(self)
        self._deadline = asyncio.get_running_loop().call_at(self._deadline_at, self._handshake_timed_out)

    # get_buffer and buffer_updated run for every read: the shared buffer's two
    # attributes are read and set here, with no call (see read_buffer.py).

    def get_buffer(self, sizehint: int) -> memoryview:
        reads = self._reads
        self._lent = reads.spare() if reads.in_use else reads.view
        return self._lent

    def buffer_updated(self, nbytes: int) -> None:
        lent = self._lent
        if self._relay is None:
            self.data_received(bytes(lent[:nbytes]))
            return
        reads = self._reads
        outer = reads.in_use
        reads.in_use = outer or lent is reads.view
        try:
            with lent[:nbytes] as data:
                self._relay.client_data(data)
        finally:
            reads.in_use = outer

    def data_received(self, data: bytes) -> None:
        if self._relay is not None:
            self._relay.client_data(data)
        elif self._handler is not None:
            self._handler.client_data(data)
        elif self._hixie is not None:
            self._hixie[1].extend(data)
            self._try_hixie()
        elif not self._finished:
            try:
                self._before_relay(data)
            except HttpError as exc:
                self._reply_error(exc, head=None)

    def eof_received(self) -> bool:
        if self._relay is not None:
            self._relay.client_eof()
        elif self._handler is not None:
            self._handler.client_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._context.connections.discard(self)
        if self._ticket is not None:
            self._ticket.release()
        if self._writable is not None:
            self._writable.set()  # a file sender waiting for room must see the close
        self._cancel_deadline()
        if self._relay is not None:
            self._relay.client_lost()
        elif self._handler is not None:
            self._handler.client_lost()
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        if self._writable is not None:
            self._writable.clear()
        if self._relay is not None:
            self._relay.client_write_paused()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()
        if self._relay is not None:
            self._relay.client_write_resumed()

    # -- before the relay ------------------------------------------------

    def _before_relay(self, data: bytes) -> None:
        if not self._sniffed:
            self._buffer += data
            kind = sniffing.sniff(self._buffer)
            if kind is sniffing.Kind.NEED_MORE:
                return
            self._sniffed = True
            data, self._buffer = self._buffer, b""
            if kind is sniffing.Kind.FLASH_POLICY:
                log.info("%s: Flash policy request", self._peer)
                self._finish(sniffing.flash_policy_response(self._context.flash_policy_port))
                return
            if kind is not sniffing.Kind.HTTP:
                # TLS lands here only when no certificate is configured.
                log.info("%s: dropped: not HTTP (%s)", self._peer, kind.value)
                meter().handshake_failed(Refusal.PROXY_HEADER if kind is sniffing.Kind.PROXY_HEADER
                                         else Refusal.BAD_REQUEST)
                self._finish(b"")
                return
        assert self._reader is not None  # nothing is read past the head before the relay
        head = self._reader.feed(data)
        if head is not None:
            assert self._ticket is not None
            self._ticket.head_complete()  # it keeps us waiting no more: never evicted
            try:
                self._route(head)
            except HttpError as exc:
                self._reply_error(exc, head)

    def _route(self, head: RequestHead) -> None:
        assert self._ticket is not None
        config = self._context.config
        if self._ticket.refusal is not None:
            raise self._ticket.refusal
        if config.forwarded_header != "none":
            self._take_forwarded(head)
        if not host_allowed(head.headers.get("Host"), config.allowed_hosts):  # DNS rebinding
            raise HttpError(421, "this gateway does not answer to that host name", reason=Refusal.HOST,
                            log_message=f"host {printable(head.headers.get('Host'))} not allowed (see --allowed-hosts)")
        websocket = head.wants_websocket and head.method == "GET"
        if websocket and head.version != "HTTP/1.1":
            raise HttpError(400, "a WebSocket upgrade needs HTTP/1.1")
        if not websocket:
            if head.method not in ("GET", "HEAD"):
                raise HttpError(405, f"method {head.method} not allowed", (("Allow", "GET, HEAD"),))
            if config.web_dir is None:
                raise HttpError(426, "this port speaks WebSocket; no --web directory is served",
                                (("Upgrade", "websocket"),))
        elif not origin_allowed(head.headers.get("Origin"), head.headers.get("Host"),
                                config.allowed_origins, same_origin=config.web_dir is not None):
            raise HttpError(403, "origin not allowed", reason=Refusal.ORIGIN,
                            log_message=f"origin {printable(head.headers.get('Origin'))} not allowed "
                                        "(see --allowed-origins)")
        needs_auth = self._context.authenticator is not None and (websocket or config.web_auth)
        router = self._context.router if websocket else None
        token = self._token_used = self._token(head) if router is not None else None
        if needs_auth or (router is not None and not router.immediate):
            assert self._transport is not None
            self._transport.pause_reading()  # the head is complete; more waits in the kernel
            self._task = asyncio.get_running_loop().create_task(self._prepare(head, websocket, needs_auth, token))
            return
        if router is not None and token is not None:
            self._connector = router.resolve_now(token, self._ticket.key)
        self._accept(head, websocket)

    def _take_forwarded(self, head: RequestHead) -> None:
        """Behind a trusted reverse proxy, the client is the one its header names
        (--forwarded-header): for the log, the per-address cap and a handler."""
        address = self._address
        if not isinstance(address, tuple) or self._ticket is None:
            return
        config = self._context.config
        client = client_address(head.headers, address[0], functools.partial(trusts, config.trusted_proxies),
                                _FORWARDED_SOURCES[config.forwarded_header])
        if client == address[0]:
            return
        if not self._context.gate.admission.move(self._ticket, client):
            raise HttpError(429, "too many connections from your address", reason=Refusal.LIMIT,
                            log_message=f"{client}: too many connections from its address (--max-connections-per-ip)")
        self._peer = f"{client} via {self._peer}"
        self._address = (client, 0)  # its port is the proxy's secret

    def _token(self, head: RequestHead) -> str:
        host_token = self._context.config.host_token
        if host_token:
            token = token_from_host(head.headers.get("Host"))
        else:
            token = token_from_target(head.target)
        if token is None:
            where = "Host header" if host_token else "?token= in the path"
            raise HttpError(404, "no token given", log_message=f"no token ({where})", reason=Refusal.TOKEN_UNKNOWN)
        return token

    async def _prepare(self, head: RequestHead, websocket: bool, needs_auth: bool, token: str | None) -> None:
        """Authentication first (an unauthenticated client must not probe tokens), then the
        token; but an auth plugin that reads its target (upstream's contract: any plugin that
        does not declare `needs_target = False`) runs after the lookup and gets that target."""
        assert self._transport is not None
        authenticator = self._context.authenticator
        target_first = needs_auth and token is not None and authenticator is not None and authenticator.needs_target
        try:
            if needs_auth and not target_first:
                await self._authenticate(head)
            if token is not None:
                assert self._context.router is not None and self._ticket is not None
                self._connector = await self._context.router.resolve(token, self._plugin_time_left_s(),
                                                                     self._ticket.key)
            if target_first:
                await self._authenticate(head, plugin_target(self._connector))
        except HttpError as exc:
            self._reply_error(exc, head)
            return
        finally:
            self._task = None
        if self._transport.is_closing():
            return
        self._transport.resume_reading()
        self._accept(head, websocket)

    async def _authenticate(self, head: RequestHead, target: PluginTarget | None = None) -> None:
        assert self._context.authenticator is not None and self._transport is not None
        client_cn = peer_common_name(self._transport.get_extra_info("ssl_object"))
        try:
            await self._context.authenticator.check(auth_headers(head.headers, client_cn), self._plugin_time_left_s(),
                                                    target)
        except HttpError:
            raise
        except Exception:  # a plugin may raise anything: the client must still get an answer
            log.exception("%s: the auth plugin failed", self._peer)
            raise HttpError(500, "authentication failed", reason=Refusal.AUTH) from None

    def _plugin_time_left_s(self) -> float:
        return time_left_s(self._deadline_at, asyncio.get_running_loop().time(),
                           margin_s=_PLUGIN_MARGIN_S, floor_s=_PLUGIN_FLOOR_S)

    def _accept(self, head: RequestHead, websocket: bool) -> None:
        if websocket:
            self._start_websocket(head)
        else:
            assert self._transport is not None and self._context.config.web_dir is not None
            self._finished = True
            self._cancel_deadline()  # a large file may take longer than the handshake
            self._writable = asyncio.Event()
            self._writable.set()  # nothing was written yet
            handlers = self._context.handlers
            if handlers is not None and handlers.serves_http:  # an embedding program's send_head, ...
                address = self._address
                exchange = HttpExchange(self._transport, self._writable,
                                        tuple(address[:2]) if isinstance(address, tuple) else ())
                self._task = asyncio.get_running_loop().create_task(handlers.run_http(exchange, head, self._peer))
                return
            self._task = asyncio.get_running_loop().create_task(
                web.serve(self._transport, head, self._context.config.web_dir, self._peer, self._writable))

    def _start_websocket(self, head: RequestHead) -> None:
        assert self._transport is not None and self._reader is not None
        leftover, self._reader = self._reader.leftover, None
        if self._context.config.hixie76 and hixie.is_hixie76(head.headers):
            self._hixie = (head, bytearray(leftover))
            self._try_hixie()
            return
        result = perform_handshake(head.target, head.headers, self._context.config.max_message_bytes)
        self._transport.write(result.response)
        if not result.accepted:
            meter().handshake_failed(Refusal.BAD_REQUEST)
            log.info("%s: WebSocket handshake refused: %s", self._peer, printable(result.error),
                     extra=self._refused(Refusal.BAD_REQUEST, int(result.response[9:12]), head))
            self._finish(b"")
            return
        session = WebSocketSession(result.subprotocol, self._context.config.max_message_bytes)
        log.debug("%s: WebSocket open, path %s, subprotocol %s", self._peer, printable_target(head.target),
                  result.subprotocol)
        if self._context.handlers is not None and self._context.handlers.serves_websocket:
            self._start_handler(head, session, leftover)
        else:
            self._start_relay(session, leftover)

    def _start_handler(self, head: RequestHead, session: WebSocketSession, leftover: bytes) -> None:
        """Upstream's RequestHandlerClass serves the client on a thread until it relays."""
        assert self._transport is not None and self._context.handlers is not None
        self._cancel_deadline()  # the handler has HANDLER_START_S of its own
        self._finished = True  # nothing here reads the client any more: the handler does
        address = self._address
        self._handler = HandlerSession(self._transport, session, tuple(address[:2]) if isinstance(address, tuple) else (),
                                       self._start_handler_relay)
        self._task = asyncio.get_running_loop().create_task(self._context.handlers.run(self._handler, head, self._peer))
        if leftover:
            self._handler.client_data(leftover)

    def _start_handler_relay(self, session: RelaySession, target: Connector, on_end: Callable[[], None]) -> None:
        """The handler's do_proxy(): relay to the socket it connected."""
        self._connector = target
        self._start_relay(session, b"", on_end)

    def _try_hixie(self) -> None:
        """A Hixie-76 handshake needs the 8 bytes that follow the request head."""
        assert self._hixie is not None and self._transport is not None
        head, received = self._hixie
        if len(received) < hixie.KEY3_BYTES:
            return
        self._hixie = None
        secure = self._transport.get_extra_info("ssl_object") is not None
        try:
            response = hixie.handshake_response(head.headers, head.target, bytes(received[:8]), secure)
        except HttpError as exc:
            self._reply_error(exc, head)
            return
        self._transport.write(response)
        log.debug("%s: Hixie-76 WebSocket open, path %s", self._peer, printable_target(head.target))
        self._start_relay(hixie.HixieSession(self._context.config.max_message_bytes), bytes(received[8:]))

    def _start_relay(self, session: RelaySession, leftover: bytes, then: Callable[[], None] | None = None) -> None:
        """`then`: called when the session ends, after the server is told."""
        assert self._transport is not None
        config = self._context.config
        self._cancel_deadline()
        on_end = self._context.on_session_end
        if then is not None:
            told, after = on_end, then

            def on_end() -> None:
                told()
                after()
        connector, facts = self._connector, self._facts(session)
        if config.target_proxy_protocol is not None and then is None:  # a handler connected its own
            connector = HeaderConnector(connector, proxy_header(config.target_proxy_protocol, self._address,
                                                                self._transport.get_extra_info("sockname")))
        self._relay = Relay(
            self._transport, session, connector,
            peer=self._peer,
            facts=facts,
            write_buffer_bytes=config.write_buffer_bytes,
            close_timeout_s=config.close_timeout_s,
            recording=(self._context.recorder.session(about_line(facts.client, facts.proxy, connector.description))
                       if self._context.recorder else None),
            heartbeat_s=config.lifetime.heartbeat_s,
            stall_timeout_s=config.lifetime.stall_timeout_s,
            on_end=on_end,
        )
        self._context.on_session_start()
        self._relay.start(leftover)

    def _facts(self, session: RelaySession) -> SessionFacts:
        """Who the session is with, for its end (proxy/session_report.py)."""
        assert self._transport is not None
        tls = self._transport.get_extra_info("ssl_object")
        return SessionFacts(
            self._peer, client_text(self._address), proxy_text(self._address, self._transport),
            redact(self._token_used) if self._token_used is not None else None,
            getattr(session, "subprotocol", None), tls.version() if tls is not None else None)

    def _reply_error(self, exc: HttpError, head: RequestHead | None) -> None:
        target = f" {head.method} {printable_target(head.target)}" if head is not None else ""
        if exc.reason is not None:
            meter().handshake_failed(exc.reason)
        if not exc.quiet:
            log.info("%s:%s HTTP %d: %s", self._peer, target, exc.status, printable(exc.log_message),
                     extra=self._refused(exc.reason, exc.status, head))

        self._finish(error_response(exc.status, str(exc), exc.headers,
                                    include_body=head is None or head.method != "HEAD"))

    def _refused(self, reason: Refusal | None, status: int | None, head: RequestHead | None) -> dict[str, object]:
        assert self._transport is not None
        return refusal_record(reason, status, head, self._address, self._transport)

    def _finish(self, last: bytes) -> None:
        """Send a last reply and close; the connection takes no more input."""
        self._finished = True
        self._cancel_deadline()
        assert self._transport is not None
        if last:
            self._transport.write(last)
        self._transport.close()

    def _handshake_timed_out(self) -> None:
        self._deadline = None
        if self._relay is None and not self._finished:
            meter().handshake_failed(Refusal.TIMEOUT)
            self._context.gate.timed_out("%s: dropped: handshake not complete within %gs",
                                         self._peer, self._context.config.handshake_timeout_s)
            self._drop()

    def _evicted(self) -> None:
        """The pool is full and this client, still sending its head, is the oldest such
        (admission.py): close it to make room. Its ticket is released already."""
        if self._relay is None and not self._finished:
            meter().handshake_failed(Refusal.LIMIT)
            self._cancel_deadline()
            self._drop()

    def _drop(self) -> None:
        self._finished = True
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # -- server stop -----------------------------------------------------

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def shutdown(self) -> None:
        """Server stop: sessions close with 1001; clients still in their handshake get 503."""
        if self._relay is not None:
            self._relay.shutdown()
        elif self._handler is not None:
            self._handler.close(CloseCode.GOING_AWAY, "Server shutting down")
        elif self._transport is not None and not self._finished:
            self._finished = True
            self._cancel_deadline()
            if self._task is not None:
                self._task.cancel()
            meter().handshake_failed(Refusal.SHUTDOWN)
            self._transport.write(error_response(503, "server shutting down"))
            self._transport.close()
