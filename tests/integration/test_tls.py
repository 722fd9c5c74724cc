"""TLS on the shared port: wss:// beside ws://, client certificates, reload, bad files."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys

import pytest
from certs import make_all
from helpers import TcpServer, assert_one_line_error, echo_handler, running_proxy, timeout, ws_connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("certs"))


def client_context(certs, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if cert:
        context.load_cert_chain(str(certs / f"{cert}.pem"))
    return context


async def echo(url: str, context=None, payload: bytes = b"secure") -> None:
    async with ws_connect(url, ssl=context) as ws:
        await ws.send(payload)
        assert await ws.recv() == payload


def run(coro, seconds: float = 30):
    async def bounded():
        async with asyncio.timeout(timeout(seconds)):
            return await coro
    return asyncio.run(bounded())


def test_wss_and_ws_share_the_port_with_a_verified_certificate(certs, echo_server):
    with running_proxy("--cert", str(certs / "server.crt"), "--key", str(certs / "server.key"),
                       "127.0.0.1:0", echo_server.address) as proxy:
        run(echo(f"wss://localhost:{proxy.port}/", client_context(certs)))
        run(echo(f"ws://127.0.0.1:{proxy.port}/"))


def test_combined_pem_and_encrypted_key(certs, echo_server):
    with running_proxy("--cert", str(certs / "server.pem"), "127.0.0.1:0", echo_server.address) as proxy:
        run(echo(f"wss://localhost:{proxy.port}/", client_context(certs)))
    with running_proxy("--cert", str(certs / "server.crt"), "--key", str(certs / "server-enc.key"),
                       "--key-password", "secret", "127.0.0.1:0", echo_server.address) as proxy:
        run(echo(f"wss://localhost:{proxy.port}/", client_context(certs)))


def test_ssl_only_refuses_plain_websocket_and_http(certs, echo_server):
    with running_proxy("--ssl-only", "--cert", str(certs / "server.pem"), "127.0.0.1:0",
                       echo_server.address) as proxy:
        run(echo(f"wss://localhost:{proxy.port}/", client_context(certs)))
        with pytest.raises(InvalidStatus) as refused:
            run(echo(f"ws://127.0.0.1:{proxy.port}/"))
        assert refused.value.response.status_code == 403
        for method in (b"GET", b"POST", b"PUT"):  # one byte is all it reads: "P" must do too
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
                sock.sendall(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
                reply = sock.recv(1000)
            assert reply.startswith(b"HTTP/1.1 403") and b"TLS only" in reply, method
        proxy.wait_log(r"plain connection refused \(--ssl-only\)")


def test_client_certificates_accepted_and_refused(certs, echo_server):
    with running_proxy("--verify-client", "--cafile", str(certs / "ca.pem"), "--cert", str(certs / "server.pem"),
                       "127.0.0.1:0", echo_server.address) as proxy:
        url = f"wss://localhost:{proxy.port}/"
        run(echo(url, client_context(certs, "alice")))
        # TLS 1.3: the client's handshake ends before the server checks its certificate,
        # so the client sees the connection closed instead of an HTTP response.
        for cert, reason in ((None, "PEER_DID_NOT_RETURN_A_CERTIFICATE"), ("mallory", "CERTIFICATE_VERIFY_FAILED")):
            with pytest.raises(InvalidMessage) as refused:
                run(echo(url, client_context(certs, cert)))
            assert isinstance(refused.value.__cause__, EOFError)
            proxy.wait_log(f"TLS handshake failed: {reason}")
        run(echo(url, client_context(certs, "alice")))  # still serving


def _peer_cn(port: int, certs) -> str:
    context = client_context(certs)
    with socket.create_connection(("localhost", port), timeout=timeout(10)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]


def test_sighup_reloads_the_certificate_and_keeps_live_sessions(certs, tmp_path, echo_server):
    cert = tmp_path / "live.pem"
    shutil.copy(certs / "server.pem", cert)
    with running_proxy("--cert", str(cert), "127.0.0.1:0", echo_server.address) as proxy:
        assert _peer_cn(proxy.port, certs) == "one"

        async def scenario():
            async with ws_connect(f"wss://localhost:{proxy.port}/", ssl=client_context(certs)) as live:
                await live.send(b"before")
                assert await live.recv() == b"before"
                shutil.copy(certs / "server2.pem", cert)
                proxy.proc.send_signal(signal.SIGHUP)
                await asyncio.to_thread(proxy.wait_log, "certificate reloaded")
                assert await asyncio.to_thread(_peer_cn, proxy.port, certs) == "two"
                await live.send(b"after")
                assert await live.recv() == b"after"
        run(scenario())
        # A broken file on reload keeps the previous certificate.
        cert.write_text("garbage")
        proxy.proc.send_signal(signal.SIGHUP)
        proxy.wait_log("certificate not reloaded")
        assert _peer_cn(proxy.port, certs) == "two"


def websockify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "websockify", *args], capture_output=True, text=True,
                          timeout=timeout(30))


@pytest.mark.parametrize("make_args,message", [
    (lambda c: ["--cert", str(c / "missing.pem")], "cannot read certificate file"),
    (lambda c: ["--cert", str(c)], "cannot read certificate file"),
    (lambda c: ["--cert", str(c / "ca.srl")], "cannot load certificate"),
    (lambda c: ["--cert", str(c / "server.crt"), "--key", str(c / "server2.key")], "does not match"),
    (lambda c: ["--cert", str(c / "server.crt"), "--key", str(c / "server-enc.key"), "--key-password", "wrong"],
     "wrong --key-password"),
    (lambda c: ["--cert", str(c / "server.crt"), "--key", str(c / "server-enc.key")], "give --key-password"),
    (lambda c: ["--cert", str(c / "server.pem"), "--ssl-ciphers", "NOPE"], "no usable cipher"),
    (lambda c: ["--cert", str(c / "server.pem"), "--verify-client", "--cafile", str(c / "nope.pem")],
     "cannot load --cafile"),
    (lambda c: ["--key", str(c / "server.key")], "--key requires --cert"),
])
def test_bad_tls_files_are_one_line_and_exit_2(certs, make_args, message):
    assert_one_line_error(websockify(*make_args(certs), "127.0.0.1:0", "127.0.0.1:1"), message)


def test_garbage_and_stalled_tls_clients_are_dropped_in_bounded_time(certs, echo_server):
    with running_proxy("--handshake-timeout", "1", "--cert", str(certs / "server.pem"), "127.0.0.1:0",
                       echo_server.address) as proxy:
        async def scenario():
            async with ws_connect(f"wss://localhost:{proxy.port}/", ssl=client_context(certs)) as live:
                stalled = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
                stalled.sendall(b"\x16\x03\x01")  # a TLS record header, then nothing
                garbage = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
                garbage.sendall(b"\x16" + os.urandom(300))
                silent = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
                for sock in (stalled, garbage, silent):
                    await asyncio.to_thread(_read_until_closed, sock)
                    sock.close()
                await live.send(b"unaffected")
                assert await live.recv() == b"unaffected"
        run(scenario())
        proxy.wait_log("TLS handshake failed")
        proxy.wait_log("dropped: sent nothing")


def _read_until_closed(sock: socket.socket) -> None:
    """Read until the server ends the connection with a FIN (a reset or a timeout fails the test)."""
    sock.settimeout(timeout(10))
    while sock.recv(4096):
        pass


def _tls_echo_server(certs) -> TcpServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs / "server.pem"))

    def handler(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            echo_handler(tls)

    return TcpServer(handler)


def test_ssl_target_verifies_the_target(certs):
    server = _tls_echo_server(certs)
    try:
        with running_proxy("--ssl-target", "127.0.0.1:0", f"localhost:{server.port}",
                           env={"SSL_CERT_FILE": str(certs / "ca.pem")}) as proxy:
            run(echo(proxy.url, payload=b"to a TLS target"))
        with running_proxy("--ssl-target", "127.0.0.1:0", f"localhost:{server.port}",
                           env={"SSL_CERT_FILE": str(certs / "otherca.pem")}) as proxy:
            async def refused():
                async with ws_connect(proxy.url) as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        await ws.recv()
                    return info.value.rcvd.code
            assert run(refused()) == 1011
            proxy.wait_log("TLS failed")
    finally:
        server.close()


def test_flash_policy_request(echo_proxy):
    with socket.create_connection(("127.0.0.1", echo_proxy.port), timeout=timeout(10)) as sock:
        sock.sendall(b"<policy-file-request/>\0")
        reply = b""
        while chunk := sock.recv(1000):
            reply += chunk
    assert reply.endswith(b"\0")
    assert f'to-ports="{echo_proxy.port}"'.encode() in reply and b"<cross-domain-policy>" in reply


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_a_tls_target_is_closed_cleanly_when_the_client_leaves(certs, loop):
    """A TLS transport cannot half-close: the relay closes it after the last byte
    (close_notify) at once, instead of waiting its linger and resetting it."""
    server = _tls_echo_server(certs)
    try:
        with running_proxy("--ssl-target", "127.0.0.1:0", f"localhost:{server.port}",
                           env={"SSL_CERT_FILE": str(certs / "ca.pem"), "WEBSOCKIFY_EVENT_LOOP": loop}) as proxy:
            run(echo(proxy.url, payload=b"bye"))
            match = proxy.wait_log(r"up=3 down=3 duration=(\d+\.\d+)s close=1000")
            assert float(match.group(1)) < 2.0
        assert "eof_received() has no effect" not in proxy.log
    finally:
        server.close()
