"""--proxy-protocol behind a real HAProxy (issue 19): each instance sees, logs and limits
the real client's address; a connection not from a trusted proxy, or without a header,
is closed with a log line."""
from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from typing import Iterator

import pytest
from certs import make_all
from helpers import Proxy, reserved_port, start_proxy, timeout, wait_for, ws_connect
from rawws import frame, read_frame, read_head, status_of, upgrade_request
from reverse_proxies import haproxy


def open_from(source: str, port: int) -> socket.socket:
    """A WebSocket session from the loopback address `source` (127.0.0.2, ...)."""
    sock = socket.socket()
    sock.settimeout(timeout(10))
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request("/"))
    assert status_of(read_head(sock)) == 101
    return sock


def closed(sock: socket.socket) -> bool:
    """The server closed the connection without answering (a reset counts too)."""
    try:
        return read_head(sock) == b""
    except ConnectionResetError:
        return True


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(frame(0x2, payload))
    return read_frame(sock)[1]


@contextlib.contextmanager
def instances(count: int, *options: str, target: str) -> Iterator[list[Proxy]]:
    proxies: list[Proxy] = []
    try:
        for _ in range(count):
            with reserved_port() as port:
                proxies.append(start_proxy("--proxy-protocol", *options, f"127.0.0.1:{port}", target))
        yield proxies
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_two_instances_behind_haproxy_see_the_real_clients(tmp_path, echo_server, send_proxy):
    with instances(2, target=echo_server.address) as proxies, \
            haproxy(tmp_path, [p.port for p in proxies], send_proxy) as front:
        sessions = [open_from(source, front) for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3")]
        for n, sock in enumerate(sessions):
            assert echo(sock, b"hello %d" % n) == b"hello %d" % n
            sock.close()
        def sources() -> set[str]:
            return {match for proxy in proxies for match in re.findall(r"\b(127\.0\.0\.\d+):\d+ target=", proxy.log)}

        wait_for(lambda: sources() == {"127.0.0.2", "127.0.0.3"}, 10, "both clients' addresses in the session lines")
        for proxy in proxies:  # leastconn: both instances served, each naming real clients only
            proxy.wait_log(r"\b127\.0\.0\.[23]:\d+ target=")
            assert not re.search(r"\b127\.0\.0\.1:\d+ target=", proxy.log), proxy.log  # never the balancer


def test_the_per_address_cap_counts_real_clients(tmp_path, echo_server):
    with instances(1, "--max-connections-per-ip", "2", target=echo_server.address) as proxies, \
            haproxy(tmp_path, [proxies[0].port]) as front:
        held = [open_from("127.0.0.2", front) for _ in range(2)]
        third = socket.socket()
        third.settimeout(timeout(10))
        third.bind(("127.0.0.2", 0))
        third.connect(("127.0.0.1", front))
        third.sendall(upgrade_request("/"))
        assert closed(third)  # its address has two already
        other = open_from("127.0.0.3", front)  # another client behind the same balancer gets in
        assert echo(other, b"in") == b"in"
        proxies[0].wait_log(r"127\.0\.0\.2:\d+: dropped: 2 connections from its address")
        for sock in (*held, third, other):
            sock.close()


def test_a_connection_not_from_a_trusted_proxy_or_without_a_header_is_closed(echo_server):
    with instances(1, "--trusted-proxies", "127.0.0.1", target=echo_server.address) as proxies:
        proxy = proxies[0]
        # Trusted, but a client speaking straight to us: its request is no PROXY header.
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
            sock.sendall(upgrade_request("/"))
            assert closed(sock)
        proxy.wait_log(r"dropped: no valid PROXY header \(--proxy-protocol\)")
        # Not trusted: a forged header from 127.0.0.2 changes nothing.
        forged = socket.socket()
        forged.settimeout(timeout(10))
        forged.bind(("127.0.0.2", 0))
        forged.connect(("127.0.0.1", proxy.port))
        forged.sendall(b"PROXY TCP4 10.9.8.7 127.0.0.1 5555 80\r\n" + upgrade_request("/"))
        assert closed(forged)
        forged.close()
        proxy.wait_log(r"127\.0\.0\.2:\d+: refused: not a trusted proxy")
        assert "10.9.8.7" not in proxy.log


def test_tls_on_the_same_port_after_the_header(tmp_path, echo_server):
    """The header comes before the TLS bytes: TLS sniffing sees the stream as the client sent it."""
    (tmp_path / "certs").mkdir()
    certs = make_all(tmp_path / "certs")
    with instances(1, "--cert", str(certs / "server.pem"), "--key", str(certs / "server.key"),
                   target=echo_server.address) as proxies, haproxy(tmp_path, [proxies[0].port]) as front:
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))

        async def scenario() -> bytes:
            async with ws_connect(f"wss://localhost:{front}/", ssl=context) as ws:
                await ws.send(b"secure")
                return await ws.recv()

        async def bounded() -> bytes:
            async with asyncio.timeout(timeout(30)):
                return await scenario()

        assert asyncio.run(bounded()) == b"secure"
        proxies[0].wait_log(r"127\.0\.0\.1:\d+ target=")


def test_workers_and_a_unix_listener_read_the_header_too(tmp_path, echo_server):
    path = str(tmp_path / "ws.sock")
    with reserved_port() as port:
        workers = start_proxy("--proxy-protocol", "--workers", "2", f"127.0.0.1:{port}", echo_server.address)
    unix = start_proxy("--proxy-protocol", "--unix-listen", path, echo_server.address, wait_listening=False)
    try:
        unix.wait_log("listening on")
        for backend, proxy in ((workers.port, workers), (path, unix)):
            with haproxy(tmp_path, [backend]) as front:
                sock = open_from("127.0.0.3", front)
                assert echo(sock, b"via haproxy") == b"via haproxy"
                sock.close()
                proxy.wait_log(r"\b127\.0\.0\.3:\d+ target=")
    finally:
        workers.stop()
        unix.stop()
