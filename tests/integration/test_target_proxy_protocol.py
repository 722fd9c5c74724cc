"""--target-proxy-protocol (issue 19, item 4): the target reads the real client's address
from a PROXY header. The target is a real nginx listening with `proxy_protocol`, which
answers an HTTP request (sent by the WebSocket client through the relay) with the
address it was told; behind a real HAProxy too, so the address is the one HAProxy saw."""
from __future__ import annotations

import socket

import pytest
from helpers import running_proxy, timeout
from rawws import frame, open_unix_websocket, read_frame, read_head, status_of, upgrade_request
from reverse_proxies import haproxy, nginx_proxy_protocol_echo


def answer(sock: socket.socket) -> bytes:
    """An HTTP request to nginx through the relay, and the body it answers."""
    sock.sendall(frame(0x2, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"))
    received = b""
    while True:
        opcode, payload = read_frame(sock)
        if opcode == 0x8:
            return received.rpartition(b"\r\n\r\n")[2]
        received += payload


def told_address(port: int, source: str = "127.0.0.1") -> tuple[bytes, int]:
    """The body nginx answers through websockify for a client bound to `source`, and the
    client's port."""
    with socket.socket() as sock:
        sock.settimeout(timeout(10))
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(upgrade_request("/"))
        assert status_of(read_head(sock)) == 101
        return answer(sock), sock.getsockname()[1]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_target_reads_the_clients_address(tmp_path, version):
    with nginx_proxy_protocol_echo(tmp_path) as port, \
            running_proxy("--target-proxy-protocol", version, "127.0.0.1:0", f"127.0.0.1:{port}") as proxy:
        for source in ("127.0.0.2", "127.0.0.3"):
            body, client_port = told_address(proxy.port, source)
            assert body == f"[{source}] [{client_port}]".encode()


def test_behind_haproxy_the_target_reads_the_address_haproxy_saw(tmp_path):
    (tmp_path / "haproxy").mkdir()
    with nginx_proxy_protocol_echo(tmp_path / "nginx") as port, \
            running_proxy("--proxy-protocol", "--target-proxy-protocol", "v2", "127.0.0.1:0",
                          f"127.0.0.1:{port}") as proxy, \
            haproxy(tmp_path / "haproxy", [proxy.port]) as front:
        body, client_port = told_address(front, "127.0.0.4")
        assert body == f"[127.0.0.4] [{client_port}]".encode()


def test_without_the_option_no_header_is_sent(tmp_path):
    with nginx_proxy_protocol_echo(tmp_path) as port, running_proxy("127.0.0.1:0", f"127.0.0.1:{port}") as proxy:
        body, _ = told_address(proxy.port)
        assert body == b""  # nginx found no header and closed: the relay ends with nothing relayed


def test_a_unix_client_sends_an_addressless_header(tmp_path):
    path = str(tmp_path / "ws.sock")
    with nginx_proxy_protocol_echo(tmp_path) as port, \
            running_proxy("--unix-listen", path, "--target-proxy-protocol", "v2", f"127.0.0.1:{port}",
                          wait_listening=False) as proxy:
        proxy.wait_log("listening on")
        with open_unix_websocket(path) as sock:
            assert answer(sock) == b"[] []"  # LOCAL: no address told
