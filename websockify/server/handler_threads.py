"""Upgraded clients served by an embedding program's handler class, one thread each.

The thread runs `serve(channel, head)` (websocketproxy.py builds it: the
subclass's `new_websocket_client()`) and holds on through the session, since
upstream's `do_proxy()` returns only at its end; as upstream held a process per
client, we hold a thread, at most HANDLER_THREADS at once (daemon threads: a
handler stuck forever cannot hold websockify at exit). Past that a client gets
1013 (try again later), at once. A handler that has not handed over its target within
HANDLER_START_S is given up: the client is closed with 1011.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Callable, Protocol

from ..errors import CloseCode, TargetUnavailable
from ..os_threads import threading
from ..protocol.http import RequestHead
from ..proxy.target import ProtocolFactory
from .handler_http import HttpExchange
from .handler_session import ClientChannel, HandlerSession

log = logging.getLogger(__name__)

HANDLER_THREADS = 1024
HANDLER_START_S = 60.0


class RequestHandlers(Protocol):
    """An embedding program's handler class, as the server runs it (websocketproxy.py)."""

    @property
    def serves_websocket(self) -> bool:
        """Upgraded clients go to the class (it overrides new_websocket_client, ...)."""

    @property
    def serves_http(self) -> bool:
        """Plain GET/HEAD go to the class too (it overrides send_head, ...)."""

    def serve_websocket(self, channel: ClientChannel, head: RequestHead) -> None:
        """On its thread: build the handler and run new_websocket_client()."""

    def serve_http(self, exchange: HttpExchange, head: RequestHead) -> None:
        """On its thread: build the handler and run its do_GET/do_HEAD."""


class HandlerTargets:
    """The server's default connector when the handler class chooses every target."""

    description = "targets chosen by the request handler class"

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        raise TargetUnavailable("no target: the request handler class chooses it")


class HandlerThreads:
    def __init__(self, handlers: RequestHandlers, max_threads: int = HANDLER_THREADS,
                 start_s: float = HANDLER_START_S):
        self.handlers = handlers
        self._max = max_threads
        self._start_s = start_s
        self._running = 0  # threads started and not yet finished (loop only)
        self._numbers = itertools.count(1)

    @property
    def running(self) -> int:
        return self._running

    @property
    def serves_websocket(self) -> bool:
        return self.handlers.serves_websocket

    @property
    def serves_http(self) -> bool:
        return self.handlers.serves_http

    async def run(self, session: HandlerSession, head: RequestHead, peer: str) -> None:
        """Serve one WebSocket client on a thread of its own; close it when the handler
        ends without relaying. A fresh thread per client, never reused: what a handler
        leaves in its thread (nova's eventlet hub) goes with it, as it went with
        upstream's process."""
        if self._running >= self._max:
            log.warning("%s: %d handler threads are busy: try again later", peer, self._running)
            session.close(CloseCode.TRY_AGAIN_LATER, "Try again later")
            return
        loop = asyncio.get_running_loop()

        def late() -> None:
            if not session.relaying:
                log.warning("%s: the handler did not start relaying within %gs: closing", peer, self._start_s)
                session.close(CloseCode.INTERNAL_ERROR, "Handler did not start in time")

        timer = loop.call_later(self._start_s, late)
        try:
            error = await self._on_thread(self.handlers.serve_websocket, session, head)
        finally:
            timer.cancel()
        if error is None:
            session.close(CloseCode.NORMAL, "")  # upstream closed the client when the handler returned
        else:
            self._log_failure(peer, error)
            session.close(CloseCode.INTERNAL_ERROR, "Handler failed")

    async def run_http(self, exchange: HttpExchange, head: RequestHead, peer: str) -> None:
        """Answer one plain GET/HEAD with the handler class's methods; then close."""
        if self._running >= self._max:
            exchange.fail(503, "server busy")
            return
        error = await self._on_thread(self.handlers.serve_http, exchange, head)
        if error is not None:
            self._log_failure(peer, error)
        exchange.finish(failed=error is not None)

    async def _on_thread(self, function: Callable[..., None], *args: object) -> BaseException | None:
        """`function(*args)` on a fresh daemon thread; what it raised, or None."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def finished(error: BaseException | None) -> None:
            self._running -= 1
            if not done.cancelled():
                done.set_result(error)

        def body() -> None:
            error: BaseException | None = None
            try:
                function(*args)
            except BaseException as exc:  # SystemExit too: the subclass's code never ends the process
                error = exc
            try:
                loop.call_soon_threadsafe(finished, error)
            except RuntimeError:
                pass  # the loop is closed: websockify is exiting

        self._running += 1
        threading.Thread(target=body, name=f"handler-{next(self._numbers)}", daemon=True).start()
        return await asyncio.shield(done)

    @staticmethod
    def _log_failure(peer: str, error: BaseException) -> None:
        if isinstance(error, Exception):  # the subclass's own failure, as upstream logged it
            log.warning("%s: handler exception: %s", peer, error, exc_info=error)
        else:
            log.error("%s: the handler raised %r", peer, error)
