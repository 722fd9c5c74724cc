"""What we rely on the event loops for, checked on both (uvloop and asyncio's own)."""
import asyncio
import socket

import pytest
import uvloop


async def _both_legs_nodelay() -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    accepted: "asyncio.Future[asyncio.BaseTransport]" = loop.create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(transport)

    server = await loop.create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connected, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    inbound = await asyncio.wait_for(accepted, 10)
    values = tuple(t.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                   for t in (inbound, connected))
    connected.close()
    inbound.close()
    server.close()
    return values  # type: ignore[return-value]


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_tcp_nodelay_is_set_on_accepted_and_connected_transports(run):
    """Small messages (keystrokes, pointer moves) must not wait for Nagle: the loops see to it."""
    inbound, outbound = run(_both_legs_nodelay())
    assert inbound and outbound
