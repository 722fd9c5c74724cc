"""--forwarded-header behind a real nginx (issue 19, point 2): the client nginx names in
X-Forwarded-For is the one logged and limited; what a client forges to the left of it, or
sends straight to websockify, changes nothing."""
from __future__ import annotations

import socket
import ssl

from certs import make_all
from helpers import running_proxy, timeout
from rawws import frame, read_frame, read_head, status_of, upgrade_request
from reverse_proxies import nginx

XFF = "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"


def session_from(source: str, port: int, extra: str = "",
                 tls: ssl.SSLContext | None = None) -> tuple[int, socket.socket]:
    """An upgrade request from the loopback address `source`, over TLS with `tls`: (status, socket)."""
    sock = socket.socket()
    sock.settimeout(timeout(10))
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(upgrade_request("/", extra))
    return status_of(read_head(sock)), sock


def test_the_client_nginx_names_is_logged_never_a_forged_one(tmp_path, echo_server):
    with running_proxy("--forwarded-header", "x-forwarded-for", "--trusted-proxies", "127.0.0.1",
                       "127.0.0.1:0", echo_server.address) as proxy, nginx(tmp_path, proxy.port, XFF) as front:
        status, sock = session_from("127.0.0.2", front, "X-Forwarded-For: 6.6.6.6\r\n")  # forged on the left
        assert status == 101
        sock.sendall(frame(0x2, b"hi"))
        assert read_frame(sock)[1] == b"hi"
        sock.close()
        proxy.wait_log(r"127\.0\.0\.2 via 127\.0\.0\.1:\d+ target=")
        # Straight to websockify from an untrusted address: its header is not taken.
        status, sock = session_from("127.0.0.3", proxy.port, "X-Forwarded-For: 7.7.7.7\r\n")
        assert status == 101
        sock.close()
        proxy.wait_log(r"127\.0\.0\.3:\d+ target=")
    assert "6.6.6.6" not in proxy.log and "7.7.7.7" not in proxy.log


def test_the_per_address_cap_counts_the_named_client(tmp_path, echo_server):
    with running_proxy("--forwarded-header", "x-forwarded-for", "--trusted-proxies", "127.0.0.1",
                       "--max-connections-per-ip", "1", "127.0.0.1:0", echo_server.address) as proxy, \
            nginx(tmp_path, proxy.port, XFF) as front:
        status, first = session_from("127.0.0.2", front)
        assert status == 101
        status, second = session_from("127.0.0.2", front)
        assert status == 429  # the same client, behind the same proxy
        status, other = session_from("127.0.0.3", front)
        assert status == 101  # another client behind that proxy
        for sock in (first, second, other):
            sock.close()


def test_without_the_option_the_header_is_ignored(tmp_path, echo_server):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy, nginx(tmp_path, proxy.port, XFF) as front:
        status, sock = session_from("127.0.0.2", front)
        assert status == 101
        sock.close()
        proxy.wait_log(r"127\.0\.0\.1:\d+ target=")
    assert " via " not in proxy.log


def test_nginx_terminating_tls_names_the_client(tmp_path, echo_server):
    """wss:// to nginx, plain from nginx to websockify: the session line names the client
    behind the TLS, and the header nginx would set, sent straight by an untrusted peer, is not taken."""
    (tmp_path / "certs").mkdir()
    certs = make_all(tmp_path / "certs")
    client_tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with running_proxy("--forwarded-header", "x-forwarded-for", "--trusted-proxies", "127.0.0.1",
                       "127.0.0.1:0", echo_server.address) as proxy, \
            nginx(tmp_path / "nginx", proxy.port, XFF, tls=(certs / "server.crt", certs / "server.key")) as front:
        status, sock = session_from("127.0.0.2", front, tls=client_tls)
        assert status == 101
        assert isinstance(sock, ssl.SSLSocket) and sock.version() is not None  # TLS ended at nginx
        sock.sendall(frame(0x2, b"over tls"))
        assert read_frame(sock)[1] == b"over tls"
        sock.close()
        proxy.wait_log(r"127\.0\.0\.2 via 127\.0\.0\.1:\d+ target=")
        # nginx's port speaks TLS only: a plain request there gets no 101.
        status, plain = session_from("127.0.0.2", front)
        plain.close()
        assert status == 400
        # Straight to websockify's plain port from an untrusted address, with the header nginx sets.
        status, sock = session_from("127.0.0.3", proxy.port, "X-Forwarded-For: 127.0.0.2\r\n")
        assert status == 101
        sock.close()
        proxy.wait_log(r"\b127\.0\.0\.3:\d+ target=")
    assert proxy.log.count("127.0.0.2 via") == 1  # the forged header named no one
    assert "via 127.0.0.3" not in proxy.log
