"""The limits a public server needs, and the origin check against cross-site WebSocket hijacking."""
from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time

import pytest
from certs import make_all
from helpers import assert_one_line_error, running_proxy, timeout, wait_for
from rawws import exchange, frame, open_websocket, read_frame, read_head, status_of, upgrade_request, upgrade_status


def try_open(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    sock.sendall(upgrade_request())
    if status_of(read_head(sock)) == 101:
        return sock
    sock.close()
    return None


def test_max_connections_answers_503_and_keeps_serving(echo_server):
    with running_proxy("--max-connections", "3", "127.0.0.1:0", echo_server.address) as proxy:
        held = [open_websocket(proxy.port) for _ in range(3)]
        reply = exchange(proxy.port, upgrade_request())
        assert status_of(reply) == 503 and b"Retry-After: 5" in reply
        proxy.wait_log("HTTP 503: server busy")
        held.pop().close()
        # The slot comes back once the proxy has seen the close.
        sock = wait_for(lambda: try_open(proxy.port), 10, "a free slot")
        sock.sendall(frame(0x2, b"ok"))
        assert read_frame(sock) == (0x2, b"ok")
        for s in [*held, sock]:
            s.close()


def test_max_connections_per_ip(echo_server):
    with running_proxy("--max-connections-per-ip", "2", "127.0.0.1:0", echo_server.address) as proxy:
        held = [open_websocket(proxy.port) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as third:
            third.sendall(upgrade_request())
            assert _closed_without_a_word(third)  # at once, and takes no slot
        proxy.wait_log(r"dropped: 2 connections from its address \(--max-connections-per-ip\)")
        # Another address is not affected (all of 127/8 is loopback on Linux).
        other = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10),
                                         source_address=("127.0.0.2", 0))
        other.sendall(upgrade_request())
        assert other.recv(12) == b"HTTP/1.1 101"
        for s in [*held, other]:
            s.close()


def test_beyond_the_slack_clients_are_closed_at_once(echo_server):
    # --max-connections 1 leaves a slack of 64 sockets that may still be told 503.
    with running_proxy("--max-connections", "1", "127.0.0.1:0", echo_server.address) as proxy:
        held = open_websocket(proxy.port)
        idle = [socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) for _ in range(64)]
        extra = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
        assert extra.recv(10) == b""  # closed without a word
        proxy.wait_log("dropped: 65 connections open")
        for sock in idle:
            sock.close()
        extra.close()
        held.sendall(frame(0x2, b"alive"))
        assert read_frame(held) == (0x2, b"alive")
        held.close()


def _closed_without_a_word(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _honest_upgrade(port: int) -> int:
    """An upgrade from another loopback address (all of 127/8 is lo on Linux)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10), source_address=("127.0.0.2", 0)) as sock:
        sock.sendall(upgrade_request())
        return status_of(read_head(sock))


def _idle_sockets(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) for _ in range(count)]


def test_idle_sockets_from_one_address_lock_out_neither_a_new_client_nor_a_session(echo_server):
    """Issue 17: one address's idle sockets filled the pool and its slack; now the oldest
    idle one is evicted for each newcomer, and the log says so a few times, then counts."""
    with running_proxy("--max-connections", "50", "127.0.0.1:0", echo_server.address) as proxy:
        session = open_websocket(proxy.port)
        idle: list[socket.socket] = []
        try:
            for _ in range(10):
                idle += _idle_sockets(proxy.port, 30)
                assert _honest_upgrade(proxy.port) == 101
            session.sendall(frame(0x2, b"alive"))
            assert read_frame(session) == (0x2, b"alive")
            proxy.wait_log(r"evicted: idle before its request: \d+ more in the last 10 s", seconds=20)
            assert len([line for line in proxy.lines if "evicted" in line]) <= 4
            # Nobody was turned away for want of room (idle sockets past their handshake
            # deadline may be dropped on a slow machine: that is no lockout).
            assert not re.search(r"dropped: \d+ connections", proxy.log)
        finally:
            for sock in [session, *idle]:
                sock.close()


def test_past_the_address_cap_sockets_are_closed_at_once_and_take_no_slot(echo_server):
    """With the old accounting, the 290 refused sockets held the pool's slack until their
    deadline and the honest client was dropped."""
    with running_proxy("--max-connections", "50", "--max-connections-per-ip", "10", "127.0.0.1:0",
                       echo_server.address) as proxy:
        idle = _idle_sockets(proxy.port, 300)
        try:
            started = time.monotonic()
            closed = 0
            for sock in idle[10:]:
                closed += _closed_without_a_word(sock)
            assert closed == 290 and time.monotonic() - started < timeout(5)
            for _ in range(10):
                assert _honest_upgrade(proxy.port) == 101
            proxy.wait_log(r"dropped: too many connections from one address: \d+ more in the last 10 s",
                           seconds=20)
            assert len([line for line in proxy.lines if "connections from" in line]) <= 4
        finally:
            for sock in idle:
                sock.close()


def test_header_limits(echo_server):
    with running_proxy("--max-header-bytes", "2048", "127.0.0.1:0", echo_server.address) as proxy:
        assert status_of(exchange(proxy.port, upgrade_request(extra="X-Big: " + "b" * 3000 + "\r\n"))) == 431
        assert status_of(exchange(proxy.port, upgrade_request(path="/" + "p" * 3000))) == 414
        assert upgrade_status(proxy.port, extra="X-Fits: " + "f" * 1500 + "\r\n") == 101
    with running_proxy("--max-headers", "5", "127.0.0.1:0", echo_server.address) as proxy:
        # The upgrade request already has 6 headers.
        reply = exchange(proxy.port, upgrade_request())
        assert status_of(reply) == 431 and b"more than 5 header lines" in reply
    with running_proxy("--max-headers", "6", "127.0.0.1:0", echo_server.address) as proxy:
        assert upgrade_status(proxy.port) == 101


@pytest.mark.parametrize("options,origin,expected", [
    ((), "http://anywhere.example", 101),                                          # no --web: any origin
    (("--allowed-origins", "https://a.example"), "https://a.example", 101),
    (("--allowed-origins", "https://a.example, https://b.example"), "https://b.example", 101),
    (("--allowed-origins", "https://a.example"), "https://c.example", 403),
    (("--allowed-origins", "https://a.example"), "http://a.example", 403),        # another scheme
    (("--allowed-origins", "*"), "http://anywhere.example", 101),
    (("--allowed-origins", "https://a.example"), None, 101),                       # not a browser
])
def test_allowed_origins(echo_server, options, origin, expected):
    with running_proxy(*options, "127.0.0.1:0", echo_server.address) as proxy:
        extra = f"Origin: {origin}\r\n" if origin else ""
        assert upgrade_status(proxy.port, extra=extra) == expected


def test_with_web_the_default_is_the_same_origin(echo_server, tmp_path):
    (tmp_path / "index.html").write_text("page")
    with running_proxy("--web", str(tmp_path), "127.0.0.1:0", echo_server.address) as proxy:
        def status(origin: str, host: str) -> int:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
                sock.sendall(upgrade_request(extra=f"Origin: {origin}\r\n", host=host))
                return status_of(sock.recv(4096))
        own = f"127.0.0.1:{proxy.port}"
        assert status(f"http://{own}", own) == 101
        assert status(f"HTTPS://{own.upper()}", own) == 101  # behind a TLS-terminating proxy
        assert status("http://evil.example", own) == 403
        assert status(f"http://127.0.0.1:{proxy.port + 1}", own) == 403
        assert status("https://vnc.example", "vnc.example:443") == 101  # default ports are equal
        proxy.wait_log(r"origin http://evil.example not allowed \(see --allowed-origins\)")


@pytest.mark.parametrize("args,message", [
    (("--allowed-origins", ""), "give at least one origin"),
    (("--allowed-origins", "a.example"), "is not an origin like https://host[:port]"),
    (("--max-connections", "0"), "0 is not in the range x>=1"),
    (("--max-header-bytes", "100"), "100 is not in the range x>=1024"),
])
def test_bad_limit_options(args, message):
    result = subprocess.run([sys.executable, "-m", "websockify", *args, "6080", "localhost:5900"],
                            capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, message)


def test_with_tls_idle_and_half_handshaken_sockets_are_evicted_too(tmp_path_factory, echo_server):
    """The accept loop's phases (waiting for a first byte, in the TLS handshake) are evicted like a
    plain client's head: a TLS client still gets its 101."""
    certs = make_all(tmp_path_factory.mktemp("evict"))
    with running_proxy("--cert", str(certs / "server.pem"), "--key", str(certs / "server.key"),
                       "--max-connections", "10", "127.0.0.1:0", echo_server.address) as proxy:
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        idle = _idle_sockets(proxy.port, 30)  # sent nothing
        half = _idle_sockets(proxy.port, 30)
        for sock in half:
            sock.sendall(b"\x16\x03\x01\x00\x05")  # a TLS record header, and no more
        try:
            for _ in range(3):
                raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10),
                                               source_address=("127.0.0.2", 0))
                with context.wrap_socket(raw, server_hostname="localhost") as sock:
                    sock.sendall(upgrade_request())
                    assert status_of(read_head(sock)) == 101
            assert "Traceback" not in proxy.log
        finally:
            for sock in [*idle, *half]:
                sock.close()
