"""What a connection sees of its server: one frozen context, built once by the server."""
from __future__ import annotations

import ast
import asyncio
import dataclasses
import pathlib
import socket
from typing import Any

import pytest
from fakes import FakeConnector, FakeTransport, run, turns

from websockify.config import Config, build_config
from websockify.server.connection import ClientConnection
from websockify.server.context import ConnectionContext, OpenConnections
from websockify.server.listener import ListeningSocket
from websockify.server.server import ProxyServer

SERVER = pathlib.Path(__file__).resolve().parents[3] / "websockify" / "server"


def config(**options: Any) -> Config:
    return build_config(arguments=("127.0.0.1:0", "127.0.0.1:1"), **options)


class Stub:
    def __init__(self) -> None:
        self.shut = self.aborted = False

    def shutdown(self) -> None:
        self.shut = True

    def abort(self) -> None:
        self.aborted = True


# -- the open connections -------------------------------------------------------------

def test_open_connections_wait_for_the_last_to_close():
    async def scenario() -> None:
        connections = OpenConnections()
        await asyncio.wait_for(connections.all_closed(), 5)  # none open: at once
        first, second = Stub(), Stub()
        connections.add(first)
        connections.add(second)
        waiting = asyncio.ensure_future(connections.all_closed())
        for stub in connections:
            connections.discard(stub)  # iterating a copy: leaving while iterated is fine
            await turns(1)
            assert waiting.done() is (len(connections) == 0)
        await asyncio.wait_for(waiting, 5)

    run(scenario)


# -- the context ----------------------------------------------------------------------

def test_the_context_is_frozen_and_slotted():
    async def scenario() -> None:
        context = ProxyServer(config(), FakeConnector(), []).context
        with pytest.raises(dataclasses.FrozenInstanceError):
            context.router = None  # type: ignore[misc]
        assert not hasattr(context, "__dict__")

    run(scenario)


def test_the_server_builds_it_with_its_hooks_and_settings():
    def started() -> None:
        pass

    def ended() -> None:
        pass

    async def scenario() -> None:
        sockets = [ListeningSocket(sock) for sock in _listening()]
        try:
            connector = FakeConnector()
            server = ProxyServer(config(), connector, sockets, on_session_start=started, on_session_end=ended)
            context = server.context
            assert isinstance(context, ConnectionContext)
            assert context.on_session_start is started and context.on_session_end is ended
            assert context.connector is connector is server.connector
            assert context.flash_policy_port == sockets[0].port  # the first TCP port
            assert context.connections is server.connections and context.gate.admission is server.admission
            assert context.authenticator is None and context.router is None and context.recorder is None
        finally:
            for listening in sockets:
                listening.close()

    run(scenario)


def test_each_server_has_one_read_buffer_for_all_its_connections():
    async def scenario() -> None:
        one = ProxyServer(config(), FakeConnector(), [])
        other = ProxyServer(config(), FakeConnector(), [])
        assert one.context.read_buffer is not other.context.read_buffer
        first, second = ClientConnection(one.context), ClientConnection(one.context)
        assert first.get_buffer(-1) is second.get_buffer(-1) is one.context.read_buffer.view

    run(scenario)


# -- admission of a plain listener's connection ---------------------------------------------

def test_a_plain_connection_is_admitted_by_the_gate_and_released_when_lost():
    async def scenario() -> None:
        server = ProxyServer(config(), FakeConnector(), [])
        connection = ClientConnection(server.context)
        transport = FakeTransport(connection, {"peername": ("192.0.2.7", 40000)})
        connection.connection_made(transport)
        assert server.admission.total == 1 and len(server.connections) == 1
        transport.close()
        await turns(1)
        assert server.admission.total == 0 and len(server.connections) == 0

    run(scenario)


def test_a_plain_connection_past_the_slack_is_aborted_unseen():
    async def scenario() -> None:
        server = ProxyServer(config(max_connections=1), FakeConnector(), [])
        while (entry := server.context.gate.admit("")) is not None:
            entry.ticket.head_complete()  # sessions, not idle clients that could be evicted
        total = server.admission.total
        connection = ClientConnection(server.context)
        transport = FakeTransport(connection, {"peername": ("192.0.2.7", 40000)})
        connection.connection_made(transport)
        assert transport.aborted and transport.written == b""
        assert len(server.connections) == 0
        await turns(1)  # connection_lost
        assert server.admission.total == total

    run(scenario)


# -- the import circle is gone ---------------------------------------------------------------

def _server_imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module] if node.module else [alias.name for alias in node.names])
    return names


def test_no_module_of_the_server_package_imports_one_that_imports_it():
    graph = {path.stem: _server_imports(path) for path in SERVER.glob("*.py")}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(name == goal or (name not in seen and reaches(name, goal, seen | {name}))
                   for name in graph.get(start, ()))

    circles = sorted(module for module in graph if reaches(module, module))
    assert circles == []
    assert "server" not in graph["connection"] and "server" not in graph["context"]


def _listening() -> list[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return [sock]
