"""What an adversarial client does to the proxy, and what it must not achieve:
hang it, grow its memory without bound, stall the other clients, or forge log lines."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import statistics
import struct
import threading
import time

import psutil
import pytest
from certs import make_all
from helpers import ROOT, TcpServer, running_proxy, timeout, wait_for
from rawws import (
    exchange,
    frame,
    open_websocket,
    read_frame,
    read_head,
    read_until_close,
    send_until_stalled,
    status_of,
    upgrade_request,
    upgrade_status,
)

PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}


def open_fds(proxy) -> int:
    return psutil.Process(proxy.proc.pid).num_fds()


def rss(proxy) -> int:
    return psutil.Process(proxy.proc.pid).memory_info().rss


# -- auth plugins that fail -------------------------------------------------------

def test_auth_plugin_that_crashes_gives_500_and_a_traceback(echo_server):
    with running_proxy("--auth-plugin", "faulty_auth.Crashes", "127.0.0.1:0", echo_server.address,
                       env=PLUGINS) as proxy:
        reply = exchange(proxy.port, upgrade_request(extra="X-Boom: kaboom\r\n"))
        assert status_of(reply) == 500
        proxy.wait_log(r"the auth plugin failed")
        proxy.wait_log(r"RuntimeError: plugin bug: kaboom")
        assert "Traceback" in proxy.log
        started = time.monotonic()
        assert proxy.stop() == 0
        assert time.monotonic() - started < timeout(3)


def test_auth_plugin_that_hangs_is_cut_off_by_the_handshake_deadline(echo_server):
    with running_proxy("--auth-plugin", "faulty_auth.Hangs", "--handshake-timeout", "1", "127.0.0.1:0",
                       echo_server.address, env=PLUGINS) as proxy:
        started = time.monotonic()
        reply = exchange(proxy.port, upgrade_request())
        took = time.monotonic() - started
        assert status_of(reply) == 503 and b"authentication timed out" in reply
        assert 0.8 < took < timeout(4)
        # The stuck plugin holds a worker thread, never the exit.
        started = time.monotonic()
        assert proxy.stop() == 0
        assert time.monotonic() - started < timeout(3)


def test_a_header_the_plugin_reads_twice_is_refused_not_hung(echo_server):
    with running_proxy("--auth-plugin", "faulty_auth.NeedsXToken", "--auth-source", "t", "127.0.0.1:0",
                       echo_server.address, env=PLUGINS) as proxy:
        # Not a singleton header to the parser: the plugin's own KeyError-like failure is a 500.
        reply = exchange(proxy.port, upgrade_request(extra="X-Token: t\r\nX-Token: u\r\n"))
        assert status_of(reply) == 500
        assert upgrade_status(proxy.port, extra="X-Token: t\r\n") == 101


@pytest.mark.parametrize("plugin,source,header", [
    ("ExpectOrigin", "http://a.example", "Origin: http://a.example"),
    ("BasicHTTPAuth", "u:p", "Authorization: Basic dTpw"),
])
def test_duplicated_auth_headers_get_400_and_leak_nothing(echo_server, plugin, source, header):
    with running_proxy("--auth-plugin", plugin, "--auth-source", source, "127.0.0.1:0",
                       echo_server.address) as proxy:
        assert upgrade_status(proxy.port, extra=f"{header}\r\n") == 101
        baseline = open_fds(proxy)
        for _ in range(300):
            reply = exchange(proxy.port, upgrade_request(extra=f"{header}\r\n{header}\r\n"))
            assert status_of(reply) == 400 and b"duplicate" in reply
        wait_for(lambda: open_fds(proxy) <= baseline, 10, "descriptors to come back")
        assert "Traceback" not in proxy.log


def test_duplicated_upgrade_header_gets_400_without_traceback(echo_server):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        reply = exchange(proxy.port, upgrade_request(extra="Upgrade: websocket\r\n"))
        assert status_of(reply) == 400
        proxy.wait_log("duplicate Upgrade header")
        assert "Traceback" not in proxy.log


def test_duplicated_conditional_headers_on_web_are_answered_at_once(tmp_path, echo_server):
    (tmp_path / "index.html").write_text("hi")
    with running_proxy("--web", str(tmp_path), "--handshake-timeout", "30", "127.0.0.1:0",
                       echo_server.address) as proxy:
        for name, value in (("If-None-Match", '"x"'), ("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT")):
            started = time.monotonic()
            reply = exchange(proxy.port, f"GET / HTTP/1.1\r\nHost: x\r\n{name}: {value}\r\n{name}: {value}\r\n\r\n"
                             .encode())
            assert status_of(reply) == 400
            assert time.monotonic() - started < timeout(5)


# -- floods -----------------------------------------------------------------------

def test_ping_flood_from_a_client_that_does_not_read_is_bounded(echo_server):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        sock = open_websocket(proxy.port)
        before = rss(proxy)
        one_ping = frame(0x9, b"p" * 125)  # asks for a 127-byte pong
        sent, rest = send_until_stalled(sock, one_ping * 512)
        # The proxy stopped reading: its pongs for us hit the write-buffer mark.
        assert sent < 64 * 1024 * 1024, f"the proxy kept reading {sent} bytes of pings"
        assert rss(proxy) - before < 16 * 1024 * 1024
        # Reading the pongs lets the proxy go on, and the session still works.
        sock.settimeout(timeout(10))
        pongs: list[tuple[int, bytes]] = []
        drained = threading.Thread(target=lambda: pongs.extend(
            read_frame(sock) for _ in range((sent + len(rest)) // len(one_ping))))
        drained.start()
        sock.sendall(rest)
        drained.join(timeout(60))
        assert not drained.is_alive()
        assert pongs == [(0xA, b"p" * 125)] * ((sent + len(rest)) // len(one_ping))
        sock.sendall(frame(0x2, b"still here"))
        assert read_frame(sock) == (0x2, b"still here")
        sock.close()


def test_endless_empty_continuation_frames_are_cut_off(echo_server):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        sock = open_websocket(proxy.port)
        sock.sendall(frame(0x2, b"", fin=False) + frame(0x0, b"", fin=False) * 5000)
        assert read_until_close(sock) == 1008
        sock.close()


def test_tiny_frame_flood_does_not_stall_other_clients(echo_server):
    """Acceptance: a normal client's round trip stays quick while another floods."""
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        flooder = open_websocket(proxy.port)
        stop = threading.Event()
        burst = (frame(0x2, b"x") + frame(0x2, b"")) * 20000

        def flood() -> None:
            try:
                while not stop.is_set():
                    flooder.sendall(burst)
            except OSError:
                pass

        def drain() -> None:
            try:
                while not stop.is_set() and flooder.recv(1 << 20):
                    pass
            except OSError:
                pass

        threads = [threading.Thread(target=flood), threading.Thread(target=drain)]
        for thread in threads:
            thread.start()
        try:
            probe = open_websocket(proxy.port)
            round_trips = []
            for i in range(150):
                started = time.perf_counter()
                probe.sendall(frame(0x2, b"%d" % i))
                assert read_frame(probe) == (0x2, b"%d" % i)
                round_trips.append(time.perf_counter() - started)
            probe.close()
        finally:
            stop.set()
            flooder.close()
            for thread in threads:
                thread.join(timeout(10))
        p99 = statistics.quantiles(round_trips, n=100)[98]
        # Before the read budget the stalls were 1.3-2.6 s; the goal is < 50 ms on a quiet machine.
        assert p99 < timeout(0.25), f"p99 round trip {p99 * 1000:.0f} ms"


# -- one deadline for the whole handshake --------------------------------------------

def test_handshake_deadline_spans_tls_and_request(tmp_path_factory, echo_server):
    certs = make_all(tmp_path_factory.mktemp("deadline"))
    with running_proxy("--cert", str(certs / "server.pem"), "--key", str(certs / "server.key"),
                       "--handshake-timeout", "2", "127.0.0.1:0", echo_server.address) as proxy:
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
        started = time.monotonic()
        time.sleep(1.2)  # a slow client: each stage alone is within the timeout
        sock = context.wrap_socket(raw, server_hostname="localhost")
        time.sleep(1.2)
        sock.sendall(upgrade_request())
        assert read_head(sock) == b""  # closed at the deadline, without a reply
        assert time.monotonic() - started < timeout(5)
        sock.close()
        proxy.wait_log("handshake not complete within 2s")


# -- a target that stops reading ----------------------------------------------------

def test_session_ends_when_client_leaves_a_target_that_does_not_read():
    accepted = threading.Event()
    release = threading.Event()

    def sluggish(conn: socket.socket) -> None:
        accepted.set()
        release.wait(timeout(60))  # never reads

    target = TcpServer(sluggish)
    try:
        with running_proxy("127.0.0.1:0", target.address) as proxy:
            sock = open_websocket(proxy.port)
            assert accepted.wait(timeout(10))
            send_until_stalled(sock, frame(0x2, b"z" * 65000))  # every buffer on the way is full
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # reset
            started = time.monotonic()
            proxy.wait_log(r"error=target did not read the last \d+ bytes", seconds=30)
            assert time.monotonic() - started < timeout(20)
            assert "Traceback" not in proxy.log
    finally:
        release.set()
        target.close()


# -- logs -----------------------------------------------------------------------------

def test_client_text_is_escaped_in_the_log(tmp_path, echo_server):
    (tmp_path / "index.html").write_text("hi")
    with running_proxy("--web", str(tmp_path), "127.0.0.1:0", echo_server.address) as proxy:
        evil = "http://evil\x9b[2J\x9b31m"
        reply = exchange(proxy.port, upgrade_request(extra=f"Origin: {evil}\r\n"))
        assert status_of(reply) == 403
        proxy.wait_log(r"origin .* not allowed")
        assert "\x9b" not in proxy.log and "\\x9b[2J" in proxy.log


# -- frame headers (RFC 6455 §5.2) -------------------------------------------------------

@pytest.mark.parametrize("header", [
    bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 63),          # top bit set
    bytes([0x82, 0x80 | 126]) + struct.pack("!H", 5),                # 5 needs no extension
    bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 100),              # nor 100 eight bytes
])
def test_bad_length_encodings_close_with_1002(echo_server, header):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        sock = open_websocket(proxy.port)
        sock.sendall(header + b"\x00\x00\x00\x00" + b"a" * 5)
        assert read_until_close(sock) == 1002
        sock.close()


def test_sigterm_answers_clients_still_in_their_handshake(echo_server):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # head not finished
        wait_for(lambda: any(c.status == psutil.CONN_ESTABLISHED
                             for c in psutil.Process(proxy.proc.pid).net_connections()), 10, "the client")
        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)
        assert status_of(read_head(sock)) == 503
        assert proxy.proc.wait(timeout(10)) == 0
        assert time.monotonic() - started < timeout(3)
        sock.close()
