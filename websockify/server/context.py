"""What a client connection may use of its server, and nothing more.

The server builds one ConnectionContext and hands it to each ClientConnection
it makes: the settings, the default target, the plugins, the gate that admits,
the shared read buffer, the set of open connections and the session hooks.
A connection never sees the server itself, so this is the whole interface
between the two (and connection.py need not import server.py).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from ..config import Config
from ..proxy.plugins import Authenticator
from ..proxy.recorder import Recorder
from ..proxy.routing import TokenRouter
from ..proxy.target import Connector
from .gate import Gate
from .handler_threads import HandlerThreads
from .read_buffer import SharedReadBuffer


class Stoppable(Protocol):
    """What the server does to an open connection when it stops."""

    def shutdown(self) -> None:
        """Close gracefully: 1001 for a session, 503 for a client in its handshake."""

    def abort(self) -> None:
        """Drop at once: the grace period is over."""


class OpenConnections:
    """The connections a server has open, so a stop can reach them and wait for them."""

    def __init__(self) -> None:
        self._open: set[Stoppable] = set()
        self._all_closed = asyncio.Event()

    def add(self, connection: Stoppable) -> None:
        self._open.add(connection)

    def discard(self, connection: Stoppable) -> None:
        self._open.discard(connection)
        if not self._open:
            self._all_closed.set()

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Stoppable]:
        """A copy: a connection may close (and leave the set) while the caller iterates."""
        return iter(list(self._open))

    async def all_closed(self) -> None:
        """Returns once none is open (at once if none is)."""
        while self._open:
            self._all_closed.clear()
            await self._all_closed.wait()


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class ConnectionContext:
    config: Config
    connector: Connector  # the target when no token router chooses one
    gate: Gate  # admits the connections of plain listeners (the accept loop admits the others)
    read_buffer: SharedReadBuffer
    connections: OpenConnections
    authenticator: Authenticator | None = None
    router: TokenRouter | None = None
    recorder: Recorder | None = None
    flash_policy_port: int = 0  # the one port a Flash policy names: the first TCP one
    handlers: HandlerThreads | None = None  # upstream's RequestHandlerClass serves upgraded clients
    # WebSocket sessions starting and ending, for the lifetime options and status.
    on_session_start: Callable[[], None] = _nothing
    on_session_end: Callable[[], None] = _nothing
