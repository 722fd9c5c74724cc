"""sockopts.enable_keepalive on the transports of both event loops websockify runs on."""
from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from websockify import sockopts


def _options(sock: socket.socket) -> tuple[int, int, int, int, int]:
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_keepalive_and_user_timeout_on_a_tcp_transport(loop_factory):
    async def scenario():
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
        try:
            sockopts.enable_keepalive(transport)
            sock = transport.get_extra_info("socket")
            return _options(sock)
        finally:
            transport.close()
            server.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(scenario()) == (True, 60, 10, 6, 120_000)


def test_unix_sockets_and_missing_sockets_are_left_alone(tmp_path):
    class Transport(asyncio.BaseTransport):
        def __init__(self, sock: object) -> None:
            super().__init__({"socket": sock})

    left, right = socket.socketpair()
    with left, right:
        sockopts.enable_keepalive(Transport(left))
        assert left.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    sockopts.enable_keepalive(Transport(None))  # nothing to set, nothing raised


def test_a_client_accepted_by_our_listener_inherits_the_options():
    """The client leg gets keepalive from the listening socket, with no call per connection."""
    from websockify.addresses import TcpAddress
    from websockify.server.listener import open_listener

    listener = open_listener(TcpAddress("127.0.0.1", 0), prefer_ipv6=False, backlog=8)
    with listener, socket.create_connection(listener.getsockname(), timeout=10):
        listener.setblocking(True)
        listener.settimeout(10)
        accepted, _ = listener.accept()
        with accepted:
            assert _options(accepted) == (True, 60, 10, 6, 120_000)
