"""A client's address as log lines show it, and the fields of a refused client's line."""
from __future__ import annotations

import asyncio

from ..addresses import format_host_port
from ..errors import Refusal
from ..protocol.http import RequestHead
from ..protocol.token_request import printable_target


def format_peer(address: object) -> str:
    """`1.2.3.4:5678`, `[::1]:5678`, or what a Unix socket gives (`unix-client` for nothing)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return format_host_port(str(address[0]), int(address[1]))
    return str(address or "unix-client")


def client_text(address: object) -> str:
    """The client as a session's end names it: `format_peer`, without the port a
    forwarded header does not give (0)."""
    if isinstance(address, tuple) and len(address) >= 2 and address[1] == 0:
        return str(address[0])
    return format_peer(address)


def proxy_text(client: object, transport: asyncio.BaseTransport) -> str | None:
    """The load balancer or reverse proxy that named `client`, when one did: the
    socket's peer, if it is not the client."""
    socket_peer = transport.get_extra_info("peername")
    if isinstance(client, tuple) and client[:2] != tuple(socket_peer or ())[:2]:
        return format_peer(socket_peer)
    return None


def refusal_record(reason: Refusal | None, status: int | None, head: RequestHead | None, client: object,
                   transport: asyncio.BaseTransport) -> dict[str, object]:
    """A refusal's `extra` for its log line: the fields --log-format json writes (docs/logging.md)."""
    return {"event": "handshake_failed", "fields": {
        "client": client_text(client), "proxy": proxy_text(client, transport), "status": status,
        "reason": reason.value if reason is not None else None, "method": head.method if head is not None else None,
        "path": printable_target(head.target) if head is not None else None}}
