"""Token routing through the whole proxy: one port, many targets, every failure answered."""
from __future__ import annotations

import os
import socket
import time

import pytest
from helpers import ROOT, TcpServer, echo_handler, running_proxy, timeout
from rawws import exchange, frame, open_websocket, read_frame, read_head, status_of, upgrade_request, upgrade_status

PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}


def tagged_echo(tag: bytes):
    """An echo server that prefixes every reply with its tag, so a test sees which target it reached."""
    def handler(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            conn.sendall(tag + data)
    return TcpServer(handler)


@pytest.fixture
def two_targets():
    first, second = tagged_echo(b"A:"), tagged_echo(b"B:")
    yield first, second
    first.close()
    second.close()


def echo(port: int, path: str, payload: bytes = b"hi", extra: str = "") -> bytes:
    sock = open_websocket(port, path=path, extra=extra)
    try:
        sock.sendall(frame(0x2, payload))
        return read_frame(sock)[1]
    finally:
        sock.close()


@pytest.mark.parametrize("plugin", ["routing_plugins.Table", "routing_plugins.AsyncTable"])
def test_tokens_choose_the_target(two_targets, plugin):
    first, second = two_targets
    source = f"one={first.address};two={second.address}"
    with running_proxy("--token-plugin", plugin, "--token-source", source, "127.0.0.1:0", env=PLUGINS) as proxy:
        assert echo(proxy.port, "/?token=one") == b"A:hi"
        assert echo(proxy.port, "/websockify?token=two&x=1") == b"B:hi"
        assert echo(proxy.port, "/?token=one%0A") == b"A:hi"  # a trailing newline is stripped, as upstream
        reply = exchange(proxy.port, upgrade_request("/?token=three"))
        assert status_of(reply) == 404 and b"unknown token" in reply
        assert status_of(exchange(proxy.port, upgrade_request("/"))) == 404
        proxy.wait_log(r"HTTP 404: token thre… not found")
        proxy.wait_log(rf"target=127\.0\.0\.1:{second.port} up=2 down=4")
    assert "three" not in proxy.log and "token=two" not in proxy.log


def test_unix_socket_targets(tmp_path):
    path = tmp_path / "target.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            echo_handler(conn)

    import threading
    threading.Thread(target=serve, daemon=True).start()
    with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"u=unix_socket:{path}",
                       "127.0.0.1:0", env=PLUGINS) as proxy:
        assert echo(proxy.port, "/?token=u", b"over unix") == b"over unix"
    server.close()


def test_plugin_failures_are_answered_and_harm_nobody_else(two_targets):
    first, _ = two_targets
    with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"one={first.address}",
                       "--handshake-timeout", "2", "127.0.0.1:0", env=PLUGINS) as proxy:
        assert status_of(exchange(proxy.port, upgrade_request("/?token=boom"))) == 500
        proxy.wait_log("the token plugin failed")
        proxy.wait_log("RuntimeError: plugin bug")
        assert status_of(exchange(proxy.port, upgrade_request("/?token=odd"))) == 500
        proxy.wait_log(r"token plugin returned tuple, not \(host, port\)")
        # A lookup that never returns: that client gets 503 in time; the others go on meanwhile.
        slow = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
        slow.sendall(upgrade_request("/?token=slow"))
        started = time.monotonic()
        assert echo(proxy.port, "/?token=one") == b"A:hi"
        assert time.monotonic() - started < timeout(1)
        assert status_of(read_head(slow)) == 503
        assert time.monotonic() - started < timeout(4)
        slow.close()
        assert proxy.proc.poll() is None


def test_auth_runs_before_the_lookup(two_targets, tmp_path):
    first, _ = two_targets
    count = tmp_path / "lookups"
    with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"one={first.address}",
                       "--auth-plugin", "BasicHTTPAuth", "--auth-source", "u:p", "127.0.0.1:0",
                       env={**PLUGINS, "LOOKUP_COUNT_FILE": str(count)}) as proxy:
        assert upgrade_status(proxy.port, "/?token=one") == 401
        assert upgrade_status(proxy.port, "/?token=guess") == 401
        assert not count.exists()  # an unauthenticated client cannot probe tokens
        assert echo(proxy.port, "/?token=one", extra="Authorization: Basic dTpw\r\n") == b"A:hi"
        assert count.read_text() == "one\n"


def test_host_token(two_targets):
    first, second = two_targets
    source = f"vnc1.example={first.address};::1={second.address}"
    with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", source, "--host-token",
                       "127.0.0.1:0", env=PLUGINS) as proxy:
        def via_host(host: str) -> bytes:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
                sock.sendall(upgrade_request(host=host))
                assert status_of(read_head(sock)) == 101
                sock.sendall(frame(0x2, b"h"))
                return read_frame(sock)[1]
        assert via_host("vnc1.example:6080") == b"A:h"
        assert via_host("vnc1.example") == b"A:h"
        assert via_host("[::1]:6080") == b"B:h"  # upstream's partition(':') broke IPv6 literals


def test_target_config_is_a_token_file(two_targets, tmp_path):
    first, _ = two_targets
    (tmp_path / "targets").write_text(f"# hypervisor 1\none: {first.address}\n")
    with running_proxy("--target-config", "targets", "127.0.0.1:0", cwd=str(tmp_path)) as proxy:
        assert echo(proxy.port, "/?token=one") == b"A:hi"


@pytest.mark.parametrize("args,message", [
    (("--host-token", "6080", "h:1"), "--host-token requires --token-plugin"),
    (("--target-config", "f", "--token-plugin", "TokenFile", "6080"), "--target-config is a token file"),
    (("--token-plugin", "routing_plugins.Table", "6080", "--", "true"), "conflicting targets"),
    (("--token-plugin", "no.such.Plugin", "6080"), "--token-plugin: cannot load no.such.Plugin"),
])
def test_routing_option_errors(args, message):
    import subprocess
    import sys

    from helpers import assert_one_line_error
    result = subprocess.run([sys.executable, "-m", "websockify", *args], capture_output=True, text=True,
                            timeout=timeout(30), env={**os.environ, **PLUGINS})
    assert_one_line_error(result, message)


def test_a_fleet_shares_routes_through_one_redis(two_targets, tmp_path):
    """Two instances (as behind any TCP load balancer) and one real redis-server: a token
    written once routes on both; one written later too; Redis down is a 503 on both."""
    from backends import RedisServer
    first, second = two_targets
    redis = RedisServer(str(tmp_path)).start()
    try:
        redis.set("fleet:vm1", first.address)
        source = f"unix://{redis.socket_path}?namespace=fleet"
        with running_proxy("--token-plugin", "TokenRedis", "--token-source", source, "127.0.0.1:0") as one, \
                running_proxy("--token-plugin", "TokenRedis", "--token-source", source, "127.0.0.1:0") as two:
            assert echo(one.port, "/?token=vm1") == b"A:hi"
            assert echo(two.port, "/?token=vm1") == b"A:hi"
            redis.set("fleet:vm2", '{"host": "%s"}' % second.address)  # the portal adds a machine
            assert echo(two.port, "/?token=vm2") == b"B:hi"
            assert echo(one.port, "/?token=vm2") == b"B:hi"
            assert upgrade_status(one.port, "/?token=vm3") == 404
            redis.stop()
            assert upgrade_status(one.port, "/?token=vm1") == 503
            assert upgrade_status(two.port, "/?token=vm1") == 503
            redis.start()  # without persistence: the portal writes its routes again
            redis.set("fleet:vm1", first.address)
            assert echo(one.port, "/?token=vm1") == b"A:hi"
            assert one.proc.poll() is None and two.proc.poll() is None
    finally:
        redis.stop()


def test_tokens_over_tls_with_recording(two_targets, tmp_path):
    import ssl

    from certs import make_all
    first, _ = two_targets
    (tmp_path / "certs").mkdir()
    certs = make_all(tmp_path / "certs")
    (tmp_path / "tokens").write_text(f"one: {first.address}\n")
    with running_proxy("--token-plugin", "TokenFile", "--token-source", str(tmp_path / "tokens"),
                       "--cert", str(certs / "server.pem"), "--key", str(certs / "server.key"),
                       "--record", str(tmp_path / "rec"), "127.0.0.1:0") as proxy:
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
        sock = context.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(upgrade_request("/?token=one"))
        assert status_of(read_head(sock)) == 101
        sock.sendall(frame(0x2, b"secure"))
        assert read_frame(sock) == (0x2, b"A:secure")
        sock.close()
        proxy.wait_log(r"target=127\.0\.0\.1:\d+ up=6 down=8")
    recording = (tmp_path / "rec.1").read_text()
    assert "secure" in recording and "A:secure" in recording


def test_a_token_is_escaped_in_the_log(two_targets):
    first, _ = two_targets
    with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"one={first.address}",
                       "127.0.0.1:0", env=PLUGINS) as proxy:
        assert upgrade_status(proxy.port, "/?token=%0a%1b%5b2J-unknown") == 404
        proxy.wait_log(r"HTTP 404: token \\x0a\\x1b\[2… not found")
    assert "\x1b" not in proxy.log
