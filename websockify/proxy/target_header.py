"""--target-proxy-protocol: the target learns the client's address from a PROXY
header (HAProxy's protocol, v1 text or v2 binary) written before any relayed byte.

The source is the real client (the one a load balancer named, if any); the
destination is the address the client reached here. A client without an IP
address (our Unix listener) is sent v1's UNKNOWN or v2's LOCAL, which tell the
target to use the connection's own addresses.
"""
from __future__ import annotations

import asyncio

from ..config import TargetProxyProtocol
from ..protocol.proxy_header import encode_v1, encode_v1_unknown, encode_v2, encode_v2_local
from .target import Connector, ProtocolFactory


def proxy_header(version: TargetProxyProtocol, client: object, local: object) -> bytes:
    """The header naming `client` (a socket address tuple, or anything else for none)
    as connected to `local`."""
    if isinstance(client, tuple) and isinstance(local, tuple) and len(client) >= 2 and len(local) >= 2:
        source, destination = (str(client[0]), int(client[1])), (str(local[0]), int(local[1]))
        try:
            return encode_v1(source, destination) if version == "v1" else encode_v2(source, destination)
        except ValueError:  # not an IP address (an IPv6 scope, say): as for no address
            pass
    return encode_v1_unknown() if version == "v1" else encode_v2_local()


class HeaderConnector:
    """A Connector that writes `header` first on each connection `inner` makes."""

    def __init__(self, inner: Connector, header: bytes):
        self._inner = inner
        self._header = header
        self.description = inner.description

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        transport = await self._inner.connect(factory)
        transport.write(self._header)  # before the relay writes the client's first bytes
        return transport
