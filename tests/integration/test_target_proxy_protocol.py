"""--target-proxy-protocol (issue 19, item 4): the target reads the real client's address
from a PROXY header. The target is a real nginx listening with `proxy_protocol`, which
answers an HTTP request (sent by the WebSocket client through the relay) with the
address it was told; behind a real HAProxy too, so the address is the one HAProxy saw."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from helpers import running_proxy, timeout
from rawws import frame, read_frame, read_head, status_of, upgrade_request
from reverse_proxies import NGINX, _free_port, _serving, haproxy


def nginx_telling_its_proxy_address(directory: Path):
    """nginx that reads a PROXY header first and answers `ADDRESS PORT` (or `- -` for none)."""
    port = _free_port()
    for name in ("logs", "tmp"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        location / {{ default_type text/plain; return 200 "[$proxy_protocol_addr] [$proxy_protocol_port]"; }}
    }}
}}
""")
    return port, _serving("nginx", [NGINX, "-p", str(directory), "-c", str(config),
                                    "-e", str(directory / "logs/error.log")], port)


def told_address(port: int, source: str = "127.0.0.1") -> tuple[bytes, int]:
    """The body nginx answers through websockify for a client bound to `source`, and the
    client's port."""
    with socket.socket() as sock:
        sock.settimeout(timeout(10))
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(upgrade_request("/"))
        assert status_of(read_head(sock)) == 101
        sock.sendall(frame(0x2, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"))
        answer = b""
        while True:
            opcode, payload = read_frame(sock)
            if opcode == 0x8:
                break
            answer += payload
        return answer.rpartition(b"\r\n\r\n")[2], sock.getsockname()[1]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_target_reads_the_clients_address(tmp_path, version):
    port, serving = nginx_telling_its_proxy_address(tmp_path)
    with serving, running_proxy("--target-proxy-protocol", version, "127.0.0.1:0", f"127.0.0.1:{port}") as proxy:
        for source in ("127.0.0.2", "127.0.0.3"):
            body, client_port = told_address(proxy.port, source)
            assert body == f"[{source}] [{client_port}]".encode()


def test_behind_haproxy_the_target_reads_the_address_haproxy_saw(tmp_path):
    port, serving = nginx_telling_its_proxy_address(tmp_path / "nginx")
    (tmp_path / "haproxy").mkdir()
    with serving, running_proxy("--proxy-protocol", "--target-proxy-protocol", "v2", "127.0.0.1:0",
                                f"127.0.0.1:{port}") as proxy, haproxy(tmp_path / "haproxy", [proxy.port]) as front:
        body, client_port = told_address(front, "127.0.0.4")
        assert body == f"[127.0.0.4] [{client_port}]".encode()


def test_without_the_option_no_header_is_sent(tmp_path):
    port, serving = nginx_telling_its_proxy_address(tmp_path)
    with serving, running_proxy("127.0.0.1:0", f"127.0.0.1:{port}") as proxy:
        body, _ = told_address(proxy.port)
        assert body == b""  # nginx found no header and closed: the relay ends with nothing relayed


def test_a_unix_client_sends_an_addressless_header(tmp_path):
    port, serving = nginx_telling_its_proxy_address(tmp_path)
    path = str(tmp_path / "ws.sock")
    with serving, running_proxy("--unix-listen", path, "--target-proxy-protocol", "v2",
                                f"127.0.0.1:{port}", wait_listening=False) as proxy:
        proxy.wait_log("listening on")
        from rawws import open_unix_websocket
        sock = open_unix_websocket(path)
        with sock:
            sock.sendall(frame(0x2, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"))
            answer = b""
            while True:
                opcode, payload = read_frame(sock)
                if opcode == 0x8:
                    break
                answer += payload
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"[] []")  # LOCAL: no address told
