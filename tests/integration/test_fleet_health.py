"""docs/fleet/haproxy.cfg with its health check (issue 19, items 6 and the fleet): HAProxy
asks each instance's /readyz on its --metrics port, and stops sending clients to one
whose wrapped program is down, while it still listens and accepts."""
from __future__ import annotations

import re
import socket

import pytest
from helpers import running_proxy, timeout, wait_for
from rawws import frame, read_frame, read_head, status_of, upgrade_request
from reverse_proxies import haproxy
from wrapping import marker_fixture, stop_and_check, wrap


@pytest.fixture
def marker():
    yield from marker_fixture()


def metrics_port(proxy) -> int:
    return int(proxy.wait_log(r"/readyz on http://127\.0\.0\.1:(\d+)/").group(1))


def echoed(port: int) -> bool:
    """A session through HAProxy relays a message (an instance without its program closes it)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
            sock.sendall(upgrade_request("/"))
            if status_of(read_head(sock)) != 101:
                return False
            sock.sendall(frame(0x2, b"ping"))
            return read_frame(sock) == (0x2, b"ping")
    except (OSError, AssertionError):
        return False


def test_haproxy_sends_no_client_to_an_instance_that_is_not_ready(tmp_path, marker, echo_server):
    down = wrap(marker, "--proxy-protocol", "--metrics", "127.0.0.1:0", "--wrap-mode", "ignore", "{port}", "--",
                "sh", "-c", "exit 3")
    try:
        down.wait_log("proxying on without it")  # listening, accepting, and not ready
        with running_proxy("--proxy-protocol", "--metrics", "127.0.0.1:0", "127.0.0.1:0",
                           echo_server.address) as up, \
                haproxy(tmp_path, [down.port, up.port], metrics_ports=[metrics_port(down), metrics_port(up)]) as front:
            successes = 0

            def ten_in_a_row() -> bool:
                nonlocal successes
                successes = successes + 1 if echoed(front) else 0
                return successes >= 10

            # Without the check, leastconn would keep choosing the instance whose sessions end at once.
            wait_for(ten_in_a_row, 30, "HAProxy to take the unready instance out")
            served = len(re.findall(r"target=", down.log))
            for _ in range(5):
                assert echoed(front)
            assert len(re.findall(r"target=", down.log)) == served  # none reached it any more
    finally:
        assert stop_and_check(down, marker) == 143
