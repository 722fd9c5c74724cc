"""Routing one accepted client, with an in-memory transport: sniffing, HTTP errors,
admission, the origin check, static files and the hand-over to the relay."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import Browser, FakeConnector, FakeTransport, run, turns, turns_until, upgrade_request, wait_until
from websockets.frames import Opcode

from websockify.config import Config, build_config
from websockify.protocol.sniff import FLASH_POLICY_REQUEST
from websockify.server.admission import Ticket
from websockify.server.connection import ClientConnection
from websockify.server.gate import Entry
from websockify.server.server import ProxyServer


class Client:
    """One ClientConnection of a real ProxyServer (never started: no listener) on a fake transport."""

    def __init__(self, config: Config, ticket: Ticket | None = None, deadline_s: float = 10,
                 server: ProxyServer | None = None) -> None:
        self.server = server or ProxyServer(config, FakeConnector(), [])
        self.ticket = ticket or self.server.admission.admit("127.0.0.1")
        assert self.ticket is not None
        loop = asyncio.get_running_loop()
        self.connection = ClientConnection(self.server.context, Entry(self.ticket, loop.time() + deadline_s))
        self.transport = FakeTransport(self.connection, {"peername": ("127.0.0.1", 40000)})
        self.connection.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.connection.data_received(data)

    def reply(self) -> tuple[int, dict[str, str], bytes]:
        head, _, body = bytes(self.transport.written).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split(" ")[1]), headers, body


def config(**options: Any) -> Config:
    return build_config(arguments=("127.0.0.1:0", "127.0.0.1:1"), **options)


async def answered(client: Client) -> tuple[int, dict[str, str], bytes]:
    """The reply, once the connection is closed after it."""
    await turns(1)
    assert client.transport.closed
    return client.reply()


# -- sniffing ----------------------------------------------------------------------

@pytest.mark.parametrize("first_bytes", [b"\x16\x03\x01\x02\x00", b"\x00\x01garbage", b"<html>"])
def test_what_is_not_http_is_dropped_without_a_word(first_bytes):
    async def scenario():
        client = Client(config())
        client.send(first_bytes)
        await turns(1)
        assert client.transport.closed and client.transport.written == b""
    run(scenario)


def test_flash_policy_request_in_pieces_gets_the_policy():
    async def scenario():
        client = Client(config())
        client.send(FLASH_POLICY_REQUEST[:5])
        assert not client.transport.closed and client.transport.written == b""  # not decided yet
        client.send(FLASH_POLICY_REQUEST[5:])
        await turns(1)
        assert client.transport.closed
        assert client.transport.written.startswith(b'<?xml version="1.0"?><cross-domain-policy>')
        assert client.transport.written.endswith(b"\x00")
    run(scenario)


def test_a_head_in_pieces_is_answered_once_complete():
    async def scenario():
        client = Client(config())
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        for i in range(len(request) - 1):
            client.send(request[i:i + 1])
        assert client.transport.written == b""
        client.send(request[-1:])
        assert (await answered(client))[0] == 426
    run(scenario)


# -- HTTP errors ---------------------------------------------------------------------

def test_other_methods_get_405_with_allow():
    async def scenario():
        client = Client(config())
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        status, headers, body = await answered(client)
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        assert body == b"405 Method Not Allowed: method POST not allowed\n"
    run(scenario)


def test_plain_get_without_web_gets_426():
    async def scenario():
        client = Client(config())
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await answered(client)
        assert status == 426 and headers["Upgrade"] == "websocket"
    run(scenario)


def test_head_gets_the_error_head_without_its_body():
    async def scenario():
        client = Client(config())
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = await answered(client)
        assert status == 426 and int(headers["Content-Length"]) > 0 and body == b""
    run(scenario)


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    upgrade_request(version="HTTP/1.0"),
])
def test_malformed_requests_and_old_upgrades_get_400(request_bytes):
    async def scenario():
        client = Client(config())
        client.send(request_bytes)
        assert (await answered(client))[0] == 400
    run(scenario)


# -- admission and origin -----------------------------------------------------------

def test_a_ticket_with_a_refusal_gets_503_and_is_released():
    async def scenario():
        server = ProxyServer(config(max_connections=1), FakeConnector(), [])
        first = server.admission.admit("127.0.0.1")
        assert first is not None and first.refusal is None
        first.head_complete()  # past its head: not evicted to make room
        second = server.admission.admit("127.0.0.2")
        assert second is not None and second.refusal is not None
        client = Client(server.config, second, server=server)
        client.send(upgrade_request())
        status, headers, _ = await answered(client)
        assert status == 503 and headers["Retry-After"] == "5"
        assert isinstance(server.connector, FakeConnector) and server.connector.attempts == 0
        await turns(1)  # connection_lost
        assert server.admission.total == 1
    run(scenario)


def test_a_refused_head_request_gets_503_without_body():
    async def scenario():
        server = ProxyServer(config(max_connections=1), FakeConnector(), [])
        server.admission.admit("127.0.0.1").head_complete()  # type: ignore[union-attr]
        client = Client(server.config, server.admission.admit("127.0.0.1"), server=server)
        client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await answered(client)
        assert status == 503 and body == b""
    run(scenario)


@pytest.mark.parametrize("origin,status", [
    ("https://good.example", 101),
    ("https://evil.example", 403),
    (None, 101),  # not a browser
])
def test_the_origin_check(origin, status):
    async def scenario():
        client = Client(config(allowed_origins="https://good.example"))
        client.send(upgrade_request(*([f"Origin: {origin}"] if origin else [])))
        await turns(1)
        assert client.reply()[0] == status
        assert client.transport.closed is (status != 101)
    run(scenario)


# -- WebSocket ------------------------------------------------------------------------

def test_an_upgrade_hands_over_to_the_relay_with_the_pipelined_frame():
    async def scenario():
        client = Client(config())
        browser = Browser()
        client.send(upgrade_request("Sec-WebSocket-Protocol: binary") + browser.binary(b"early"))
        status, headers, after = client.reply()
        assert status == 101 and headers["Sec-WebSocket-Protocol"] == "binary" and after == b""
        connector = client.server.connector
        assert isinstance(connector, FakeConnector)
        await turns_until(lambda: connector.transport is not None and connector.transport.written, "the target")
        assert connector.transport is not None and bytes(connector.transport.written) == b"early"
        assert connector.protocol is not None
        connector.protocol.data_received(b"late")
        browser.skip_http_head(client.transport)
        assert [(f.opcode, f.data) for f in browser.received(client.transport)] == [(Opcode.BINARY, b"late")]
    run(scenario)


class NestingRelay:
    """Stands in for the relay: its first read causes another read of the same
    connection before it is done with its own bytes, as asyncio's TLS transport does
    when the relay closes it."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.seen: list[bytes] = []

    def client_data(self, data: memoryview) -> None:
        if not self.seen:
            self.seen.append(b"")
            nested = self.connection.get_buffer(-1)
            nested[:6] = b"nested"
            self.connection.buffer_updated(6)
        self.seen.append(bytes(data))


def read(connection: ClientConnection, data: bytes) -> None:
    """What the event loop does for a BufferedProtocol: fill its buffer, report the count."""
    buffer = connection.get_buffer(-1)
    buffer[:len(data)] = data
    connection.buffer_updated(len(data))


def test_a_read_during_another_read_does_not_overwrite_its_bytes():
    async def scenario():
        client = Client(config())
        relay = NestingRelay(client.connection)
        client.connection._relay = relay  # type: ignore[assignment]
        read(client.connection, b"outer bytes")
        assert relay.seen == [b"", b"nested", b"outer bytes"]
        read(client.connection, b"next")  # the shared buffer again, once free
        assert relay.seen[-1] == b"next"
    run(scenario)


def test_an_unsupported_websocket_version_gets_426():
    async def scenario():
        client = Client(config())
        client.send(upgrade_request().replace(b"Version: 13", b"Version: 8"))
        status, headers, _ = await answered(client)
        assert status == 426 and headers["Sec-WebSocket-Version"] == "13"
    run(scenario)


# -- deadlines and stop ---------------------------------------------------------------

def test_a_client_that_never_finishes_its_head_is_dropped_at_the_deadline():
    async def scenario():
        client = Client(config(), deadline_s=0.05)
        client.send(b"GET / HT")
        await wait_until(lambda: client.transport.aborted, "the drop")
        assert client.transport.written == b""
    run(scenario)


def test_server_stop_answers_a_client_in_its_handshake_with_503():
    async def scenario():
        client = Client(config())
        client.send(b"GET / HTTP/1.1\r\n")
        client.connection.shutdown()
        status, _, body = await answered(client)
        assert status == 503 and b"server shutting down" in body
    run(scenario)


# -- static files -----------------------------------------------------------------------

def test_static_files_get_and_head(tmp_path):
    (tmp_path / "index.html").write_text("<p>hello</p>")

    async def scenario(method: str) -> tuple[int, dict[str, str], bytes]:
        client = Client(config(web=str(tmp_path)))
        client.send(f"{method} / HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await wait_until(lambda: client.transport.closed, "the reply")
        return client.reply()

    status, headers, body = run(lambda: scenario("GET"))
    assert status == 200 and headers["Content-Length"] == "12" and body == b"<p>hello</p>"
    status, headers, body = run(lambda: scenario("HEAD"))
    assert status == 200 and headers["Content-Length"] == "12" and body == b""


def test_a_large_file_waits_for_a_full_client_to_drain(tmp_path):
    blob = bytes(range(256)) * 1024  # 256 KiB: four times the client's buffer mark
    (tmp_path / "big.bin").write_bytes(blob)

    async def scenario():
        client = Client(config(web=str(tmp_path)))
        client.send(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await turns(20)
        assert not client.transport.closed
        assert client.transport.buffered <= client.transport.high + 64 * 1024  # one chunk past the mark
        while not client.transport.closed:
            client.transport.drain()
            await turns(1)
        status, _, body = client.reply()
        assert status == 200 and body == blob
    run(scenario)


# -- eviction when the pool is full ---------------------------------------------------------

def test_a_full_pool_aborts_the_oldest_client_still_sending_its_head_not_a_later_one():
    async def scenario():
        server = ProxyServer(config(max_connections=2), FakeConnector(), [])
        idle = Client(server.config, server=server)
        idle.send(b"GET / HT")  # an unfinished head
        done = Client(server.config, server=server)
        done.send(upgrade_request())  # its head is in: never evicted
        await turns(1)
        newcomer = server.context.gate.admit(("192.0.2.9", 1))
        assert newcomer is not None and newcomer.ticket.refusal is None
        assert idle.transport.aborted and idle.transport.written == b""
        assert not done.transport.aborted
        await turns(1)
        assert len(server.connections) == 1
    run(scenario)
