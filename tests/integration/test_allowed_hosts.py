"""DNS rebinding (issue 17, item 11): a page from the attacker's name, which now resolves
to the gateway, is same-origin with it; --allowed-hosts refuses names the gateway is not."""
from __future__ import annotations

import socket
import subprocess
import sys

from helpers import assert_one_line_error, http, running_proxy, timeout
from rawws import exchange, read_head, status_of, upgrade_request

REBOUND = "Origin: http://attacker.example:6080\r\n"


def upgrade(port: int, request: bytes) -> int:
    """The status of an upgrade request's answer (a 101's session is closed at once)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(request)
        return status_of(read_head(sock))


def test_without_the_option_a_rebound_name_is_served(tmp_path, echo_server):
    """The default (any host) keeps what upstream does: the attack works, as the README warns."""
    (tmp_path / "index.html").write_text("page")
    with running_proxy("--web", str(tmp_path), "127.0.0.1:0", echo_server.address) as proxy:
        assert upgrade(proxy.port, upgrade_request("/", REBOUND, host="attacker.example:6080")) == 101


def test_allowed_hosts_refuses_other_names_with_421(tmp_path, echo_server):
    (tmp_path / "index.html").write_text("page")
    with running_proxy("--web", str(tmp_path), "--allowed-hosts", "vnc.example.com,127.0.0.1",
                       "127.0.0.1:0", echo_server.address) as proxy:
        assert upgrade(proxy.port, upgrade_request("/", REBOUND, host="attacker.example:6080")) == 421
        status, _, body = http(proxy, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n\r\n".encode())
        assert status == 200 and body == b"page"
        page = exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: attacker.example:6080\r\n\r\n")
        assert status_of(page) == 421 and b"page" not in page
        good = upgrade_request("/", "Origin: https://vnc.example.com\r\n", host="vnc.example.com")
        assert upgrade(proxy.port, good) == 101
        proxy.wait_log(r"HTTP 421: host attacker\.example:6080 not allowed \(see --allowed-hosts\)")


def test_a_bad_list_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "websockify", "--allowed-hosts", "vnc:6080", "6080", "h:1"],
                            capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, "--allowed-hosts: 'vnc:6080' is not a host name or IP address (give no port)")
