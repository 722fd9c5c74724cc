"""One accepted client: sniff its first bytes, read its request, then hand it on.

A WebSocket upgrade becomes a Relay (proxy/pump.py); a plain GET/HEAD goes to
the static file server; a Flash policy request gets the policy; anything else
gets an HTTP error or is dropped. One deadline, set when the socket was
accepted, covers everything before the relay: TLS, the request head, the
origin check, authentication and a Hixie-76 key.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Optional, cast

from ..addresses import format_host_port
from ..errors import HttpError
from ..protocol import hixie
from ..protocol import sniff as sniffing
from ..protocol.handshake import perform_handshake
from ..protocol.http import RequestHead, RequestReader, auth_headers, error_response, origin_allowed
from ..protocol.logsafe import printable
from ..protocol.tokens import printable_target, token_from_host, token_from_target
from ..protocol.websocket import RelaySession, WebSocketSession
from ..proxy.pump import Relay
from ..proxy.target import Connector
from . import web
from .admission import Ticket
from .tls import peer_common_name

if TYPE_CHECKING:
    from .server import ProxyServer

log = logging.getLogger(__name__)


def format_peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return format_host_port(str(address[0]), int(address[1]))
    return str(address or "unix-client")


# Relayed client bytes are read into this buffer, shared by every connection of the
# process, and the frames' payloads are unmasked out of it: no bytes object is made
# (and copied) per read. A read is used up before its handler returns; a read made
# while one is being handled (asyncio's own TLS transport reads as it closes) gets a
# buffer of its own, so the bytes still in use are never overwritten.
_READ_SIZE = 256 * 1024
_read_view = memoryview(bytearray(_READ_SIZE))
_shared_in_use = False


class ClientConnection(asyncio.BufferedProtocol):
    """Built by the accept loop with its admission ticket and deadline (TLS sniffing),
    or by the event loop's own server (plain listeners), which admits it here."""

    __slots__ = ("_buffer", "_config", "_connector", "_deadline", "_deadline_at", "_finished", "_hixie", "_lent",
                 "_peer", "_reader", "_relay", "_server", "_sniffed", "_task", "_ticket", "_transport", "_writable")

    def __init__(self, server: "ProxyServer", ticket: Optional[Ticket] = None, deadline: float = 0.0):
        self._server = server
        self._config = server.config
        self._ticket = ticket
        self._deadline_at = deadline  # loop time by which the relay must have started
        self._transport: Optional[asyncio.Transport] = None
        self._peer = "?"
        self._buffer = b""
        self._lent = _read_view  # the buffer of the read in progress
        self._sniffed = False
        limits = server.config.limits
        # Until the head is read; dropped then: llhttp's state and the raw headers
        # would stay with every open session.
        self._reader: Optional[RequestReader] = RequestReader(limits.max_header_bytes, limits.max_headers)
        self._relay: Optional[Relay] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._deadline: Optional[asyncio.TimerHandle] = None
        self._finished = False
        self._writable: Optional[asyncio.Event] = None  # made for a file sender only
        self._hixie: Optional[tuple[RequestHead, bytearray]] = None  # head, bytes after it
        self._connector: Connector = server.connector  # a token may choose another

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        address = transport.get_extra_info("peername")
        self._peer = format_peer(address)
        loop = asyncio.get_running_loop()
        if self._ticket is None:
            self._ticket = self._server.admission.admit(address[0] if isinstance(address, tuple) else "")
            if self._ticket is None:
                log.warning("%s: dropped: %d connections open", self._peer, self._server.admission.total)
                self._finished = True
                self._transport.abort()
                return
            self._deadline_at = loop.time() + self._config.handshake_timeout_s
        self._server.connections.add(self)
        self._deadline = loop.call_at(self._deadline_at, self._handshake_timed_out)

    def get_buffer(self, sizehint: int) -> memoryview:
        self._lent = memoryview(bytearray(_READ_SIZE)) if _shared_in_use else _read_view
        return self._lent

    def buffer_updated(self, nbytes: int) -> None:
        global _shared_in_use
        lent = self._lent
        if self._relay is None:
            self.data_received(bytes(lent[:nbytes]))
            return
        outer, _shared_in_use = _shared_in_use, _shared_in_use or lent is _read_view
        try:
            with lent[:nbytes] as data:
                self._relay.client_data(data)
        finally:
            _shared_in_use = outer

    def data_received(self, data: bytes) -> None:
        if self._relay is not None:
            self._relay.client_data(data)
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
        return False

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._server.connection_closed(self)
        if self._ticket is not None:
            self._ticket.release()
        if self._writable is not None:
            self._writable.set()  # a file sender waiting for room must see the close
        self._cancel_deadline()
        if self._relay is not None:
            self._relay.client_lost()
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
                self._finish(sniffing.flash_policy_response(self._server.port))
                return
            if kind is not sniffing.Kind.HTTP:
                # TLS lands here only when no certificate is configured.
                log.info("%s: dropped: not HTTP (%s)", self._peer, kind.value)
                self._finish(b"")
                return
        assert self._reader is not None  # nothing is read past the head before the relay
        head = self._reader.feed(data)
        if head is not None:
            try:
                self._route(head)
            except HttpError as exc:
                self._reply_error(exc, head)

    def _route(self, head: RequestHead) -> None:
        assert self._ticket is not None
        if self._ticket.refusal is not None:
            raise self._ticket.refusal
        websocket = head.wants_websocket and head.method == "GET"
        if websocket and head.version != "HTTP/1.1":
            raise HttpError(400, "a WebSocket upgrade needs HTTP/1.1")
        if not websocket:
            if head.method not in ("GET", "HEAD"):
                raise HttpError(405, f"method {head.method} not allowed", (("Allow", "GET, HEAD"),))
            if self._config.web_dir is None:
                raise HttpError(426, "this port speaks WebSocket; no --web directory is served",
                                (("Upgrade", "websocket"),))
        elif not origin_allowed(head.headers.get("Origin"), head.headers.get("Host"),
                                self._config.allowed_origins, same_origin=self._config.web_dir is not None):
            raise HttpError(403, "origin not allowed",
                            log_message=f"origin {printable(head.headers.get('Origin'))} not allowed "
                                        "(see --allowed-origins)")
        needs_auth = self._server.authenticator is not None and (websocket or self._config.web_auth)
        router = self._server.router if websocket else None
        token = self._token(head) if router is not None else None
        if needs_auth or (router is not None and not router.immediate):
            assert self._transport is not None
            self._transport.pause_reading()  # the head is complete; more waits in the kernel
            self._task = asyncio.get_running_loop().create_task(self._prepare(head, websocket, needs_auth, token))
            return
        if router is not None and token is not None:
            self._connector = router.resolve_now(token)
        self._accept(head, websocket)

    def _token(self, head: RequestHead) -> str:
        if self._config.host_token:
            token = token_from_host(head.headers.get("Host"))
        else:
            token = token_from_target(head.target)
        if token is None:
            where = "Host header" if self._config.host_token else "?token= in the path"
            raise HttpError(404, "no token given", log_message=f"no token ({where})")
        return token

    async def _prepare(self, head: RequestHead, websocket: bool, needs_auth: bool, token: Optional[str]) -> None:
        """Authentication first (an unauthenticated client must not probe tokens), then the token."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        try:
            if needs_auth:
                await self._authenticate(head)
            if token is not None:
                assert self._server.router is not None
                remaining_s = max(self._deadline_at - loop.time() - 0.1, 0.01)
                self._connector = await self._server.router.resolve(token, remaining_s)
        except HttpError as exc:
            self._reply_error(exc, head)
            return
        finally:
            self._task = None
        if self._transport.is_closing():
            return
        self._transport.resume_reading()
        self._accept(head, websocket)

    async def _authenticate(self, head: RequestHead) -> None:
        assert self._server.authenticator is not None and self._transport is not None
        client_cn = peer_common_name(self._transport.get_extra_info("ssl_object"))
        # A little before the deadline, so a stuck plugin still gets the client an answer.
        remaining_s = max(self._deadline_at - asyncio.get_running_loop().time() - 0.1, 0.01)
        try:
            await self._server.authenticator.check(auth_headers(head.headers, client_cn), remaining_s)
        except HttpError:
            raise
        except Exception:  # a plugin may raise anything: the client must still get an answer
            log.exception("%s: the auth plugin failed", self._peer)
            raise HttpError(500, "authentication failed") from None

    def _accept(self, head: RequestHead, websocket: bool) -> None:
        if websocket:
            self._start_websocket(head)
        else:
            assert self._transport is not None and self._config.web_dir is not None
            self._finished = True
            self._cancel_deadline()  # a large file may take longer than the handshake
            self._writable = asyncio.Event()
            self._writable.set()  # nothing was written yet
            self._task = asyncio.get_running_loop().create_task(
                web.serve(self._transport, head, self._config.web_dir, self._peer, self._writable))

    def _start_websocket(self, head: RequestHead) -> None:
        assert self._transport is not None and self._reader is not None
        leftover, self._reader = self._reader.leftover, None
        if self._config.hixie76 and hixie.is_hixie76(head.headers):
            self._hixie = (head, bytearray(leftover))
            self._try_hixie()
            return
        result = perform_handshake(head.target, head.headers, self._config.max_message_bytes)
        self._transport.write(result.response)
        if not result.accepted:
            log.info("%s: WebSocket handshake refused: %s", self._peer, printable(result.error))
            self._finish(b"")
            return
        session = WebSocketSession(result.subprotocol, self._config.max_message_bytes)
        log.debug("%s: WebSocket open, path %s, subprotocol %s", self._peer, printable_target(head.target),
                  result.subprotocol)
        self._start_relay(session, leftover)

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
        self._start_relay(hixie.HixieSession(self._config.max_message_bytes), bytes(received[8:]))

    def _start_relay(self, session: RelaySession, leftover: bytes) -> None:
        assert self._transport is not None
        self._cancel_deadline()
        self._relay = Relay(
            self._transport, session, self._connector,
            peer=self._peer,
            write_buffer_bytes=self._config.write_buffer_bytes,
            close_timeout_s=self._config.close_timeout_s,
            recording=self._server.recorder.session() if self._server.recorder else None,
            heartbeat_s=self._config.lifetime.heartbeat_s,
            on_end=self._server.on_session_end,
        )
        self._server.on_session_start()
        self._relay.start(leftover)

    def _reply_error(self, exc: HttpError, head: Optional[RequestHead]) -> None:
        target = f" {head.method} {printable_target(head.target)}" if head is not None else ""
        log.info("%s:%s HTTP %d: %s", self._peer, target, exc.status, printable(exc.log_message))
        self._finish(error_response(exc.status, str(exc), exc.headers,
                                    include_body=head is None or head.method != "HEAD"))

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
            log.info("%s: dropped: handshake not complete within %gs",
                     self._peer, self._config.handshake_timeout_s)
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
        elif self._transport is not None and not self._finished:
            self._finished = True
            self._cancel_deadline()
            if self._task is not None:
                self._task.cancel()
            self._transport.write(error_response(503, "server shutting down"))
            self._transport.close()
