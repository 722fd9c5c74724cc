"""Connecting to the target: TCP (any address the name resolves to) or a Unix socket."""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Callable, Protocol

from ..addresses import Target, TcpAddress, UnixAddress
from ..errors import TargetUnavailable
from ..metrics import meter
from .flow import Blocker
from .own_address import OwnListeners

ProtocolFactory = Callable[[], asyncio.Protocol]


class TargetEvents(Protocol):
    """What a target connection reports to its relay (proxy/pump.py's Relay)."""

    def target_data(self, data: bytes) -> None: ...

    def target_eof(self) -> bool: ...

    def target_lost(self, exc: Exception | None) -> None: ...

    def block_client_reads(self, reason: Blocker) -> None: ...

    def unblock_client_reads(self, reason: Blocker) -> None: ...


class TargetProtocol(asyncio.Protocol):
    """Forwards the target's transport events to its relay."""

    # data_received is the relay's own bound method: the event loop calls it
    # straight, one Python frame less on every message from the target.
    __slots__ = ("_relay", "data_received")

    def __init__(self, relay: TargetEvents):
        self._relay = relay
        self.data_received = relay.target_data  # type: ignore[method-assign]

    def eof_received(self) -> bool:
        return self._relay.target_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.target_lost(exc)

    def pause_writing(self) -> None:
        self._relay.block_client_reads(Blocker.TARGET_FULL)

    def resume_writing(self) -> None:
        self._relay.unblock_client_reads(Blocker.TARGET_FULL)



class Connector(Protocol):
    """Something that opens a transport to the target for one client."""

    description: str

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport: ...


class AddressConnector:
    """Connects to a fixed TCP or Unix address; refuses one of `own`, our listeners."""

    def __init__(self, address: Target, timeout_s: float, tls: ssl.SSLContext | None = None, *,
                 own: OwnListeners | None = None):
        self.address = address
        self.description = str(address) + (" (TLS)" if tls else "")
        self._timeout_s = timeout_s
        self._tls = tls
        self.own = own

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            transport = await self._connect(loop, factory)
        except TargetUnavailable:  # not a cancel: the client leaving says nothing of the target
            meter().target_connected(loop.time() - began, False)
            raise
        meter().target_connected(loop.time() - began, True)
        return transport

    async def _connect(self, loop: asyncio.AbstractEventLoop, factory: ProtocolFactory) -> asyncio.Transport:
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:  # a timer handle: asyncio.timeout() costs a third of a connect
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_later(self._timeout_s, expire)
        try:
            if isinstance(self.address, UnixAddress):
                transport, _ = await loop.create_unix_connection(factory, self.address.path)
            else:
                # create_connection tries every resolved address in turn.
                transport, _ = await loop.create_connection(
                    factory, self.address.host, self.address.port, ssl=self._tls,
                    server_hostname=self.address.host if self._tls else None)
        except asyncio.CancelledError:
            if expired:
                raise TargetUnavailable(f"timed out connecting to {self.description}") from None
            raise
        except ssl.SSLError as exc:
            raise TargetUnavailable(f"{self.description}: TLS failed: {exc.reason or exc}") from None
        except socket.gaierror as exc:
            # Its errno is an EAI_* code, not an errno: os.strerror would say "Unknown error -2".
            host = self.address.host if isinstance(self.address, TcpAddress) else str(self.address)
            raise TargetUnavailable(f"cannot resolve target host {host!r}: {exc.strerror or exc}") from None
        except OSError as exc:
            # asyncio's message repeats the address; the errno text says what happened.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise TargetUnavailable(f"{self.description}: {reason}") from None
        finally:
            timer.cancel()
        if self.own and self.own.reached(transport.get_extra_info("peername"),
                                         transport.get_extra_info("socket").family):
            transport.abort()
            raise TargetUnavailable(f"{self.description} is this websockify's own listening address: "
                                    "refused, it would proxy to itself", "Target is this proxy")
        return transport


async def wait_for_program(ready: asyncio.Event, running: bool, timeout_s: float) -> None:
    """A wrapped program's clients wait while it starts or respawns, within the connect
    timeout; TargetUnavailable if it is not running at all, or not ready in time."""
    if ready.is_set():
        return
    if not running:
        raise TargetUnavailable("wrapped command is not running", "Wrapped command is not running")
    try:
        async with asyncio.timeout(timeout_s):
            await ready.wait()
    except TimeoutError:
        raise TargetUnavailable("wrapped command did not become ready in time",
                                "Wrapped command is not ready") from None
