"""--heartbeat behind a real nginx: a ping every N seconds keeps an idle session through
nginx's proxy_read_timeout (issue 18, point 3: pings used to come every 2N seconds to a
client that answered them, which a timeout under 2N cuts)."""
from __future__ import annotations

import socket
import time

import pytest
from helpers import running_proxy, timeout
from rawws import frame, read_frame, read_head, status_of, upgrade_request
from reverse_proxies import nginx

# Between N and 2N: the old timer's 2N gap is cut, a ping every N keeps 1.5 s of margin.
HEARTBEAT_S = 2
READ_TIMEOUT_S = 3.5


def _open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    sock.sendall(upgrade_request("/"))
    assert status_of(read_head(sock)) == 101
    return sock


def _idle_answering_pings(sock: socket.socket, seconds: float) -> bool:
    """Hold the session idle (answering pings, as browsers do); False if it was cut."""
    end = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < end:
        try:
            opcode, payload = read_frame(sock)
        except TimeoutError:
            continue
        except (EOFError, ConnectionError):
            return False
        if opcode == 0x9:
            sock.sendall(frame(0xA, payload))
        elif opcode == 0x8:
            return False
    return True


@pytest.mark.parametrize("heartbeat", [None, str(HEARTBEAT_S)], ids=["without", "with"])
def test_heartbeat_keeps_an_idle_session_through_nginx(tmp_path, echo_server, heartbeat):
    options = ("--heartbeat", heartbeat) if heartbeat else ()
    with running_proxy(*options, "127.0.0.1:0", echo_server.address) as proxy, \
            nginx(tmp_path, proxy.port, f"proxy_read_timeout {int(READ_TIMEOUT_S * 1000)}ms;") as port:
        sock = _open(port)
        try:
            alive = _idle_answering_pings(sock, 3 * READ_TIMEOUT_S + 1)
            if heartbeat is None:
                assert not alive, "nginx should cut an idle session at its read timeout: the test proves nothing"
                return
            assert alive, "the idle session was cut behind nginx although --heartbeat is under its timeout"
            sock.settimeout(timeout(5))
            sock.sendall(frame(0x2, b"after"))
            opcode, payload = read_frame(sock)
            while opcode == 0x9:
                opcode, payload = read_frame(sock)
            assert payload == b"after"
        finally:
            sock.close()
