"""Upstream's importable modules `websockify.websocket`, `websocketserver`, `sysloghandler`,
used as importers use them: upstream's own tests for the first two, from the 0.13.0 sdist,
then our real ones on loopback sockets (a WebSocketServer reached by a websockets client,
a WebSocket client through the real proxy, non-blocking use, syslog to a Unix socket)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import re
import select
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
from certs import make_ca, make_cert
from helpers import ROOT, TcpServer, echo_handler, running_proxy, timeout, ws_connect
from websockets.frames import Frame, Opcode

from websockify.sysloghandler import WebsockifySysLogHandler
from websockify.websocket import WebSocket, WebSocketWantReadError, WebSocketWantWriteError
from websockify.websocketserver import WebSocketRequestHandler, WebSocketServer

CACHE = pathlib.Path(ROOT) / ".venv" / "upstream-0.13.0"
SDIST = "websockify-0.13.0.tar.gz"
UPSTREAM_TESTS = ("tests/test_websocket.py", "tests/test_websocketserver.py")
# Upstream's tests of its own frame codec, a private method we do not have: the frames are
# websockets', whose own tests cover them.
PRIVATE = {f"test_websocket.py::HyBiEncodeDecodeTestCase::{name}" for name in (
    "test_decode_hybi_text", "test_decode_hybi_binary", "test_decode_hybi_extended_16bit_binary",
    "test_decode_hybi_extended_64bit_binary", "test_decode_hybi_multi", "test_encode_hybi_basic")}


# -- upstream's own tests ------------------------------------------------------------

def upstream_sdist() -> pathlib.Path:
    """The 0.13.0 sdist from the cache that the plugin tests share, downloaded once if absent."""
    path = CACHE / SDIST
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "websockify==0.13.0", "-d", download],
            capture_output=True, text=True, timeout=timeout(120))
        if result.returncode != 0 and not path.exists():
            pytest.skip(f"cannot download upstream's sdist: {result.stderr.strip()[-300:]}")
        if not path.exists():
            os.replace(pathlib.Path(download) / SDIST, path)  # atomic: a reader sees all or nothing
    return path


@pytest.fixture(scope="module")
def upstream_tests(tmp_path_factory) -> pathlib.Path:
    where = tmp_path_factory.mktemp("upstream")
    with tarfile.open(upstream_sdist()) as sdist:
        for name in UPSTREAM_TESTS:
            member = sdist.extractfile(f"websockify-0.13.0/{name}")
            assert member is not None
            (where / pathlib.Path(name).name).write_bytes(member.read())
    return where


def test_upstreams_own_tests_pass_but_those_of_its_private_frame_codec(upstream_tests):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "no:randomly",
         *(pathlib.Path(name).name for name in UPSTREAM_TESTS)],
        cwd=upstream_tests, capture_output=True, text=True, timeout=timeout(120),
        env={**os.environ, "PYTHONPATH": ROOT})
    outcomes = {test: outcome for outcome, test in re.findall(r"^(PASSED|FAILED|ERROR) (\S+)",
                                                              result.stdout, re.M)}
    failed = {test for test, outcome in outcomes.items() if outcome != "PASSED"}
    passed = {test for test, outcome in outcomes.items() if outcome == "PASSED"}
    assert failed == PRIVATE, result.stdout[-3000:]
    for method in ("_decode_hybi", "_encode_hybi"):  # and they fail for that reason alone
        assert f"AttributeError: 'WebSocket' object has no attribute '{method}'" in result.stdout
    assert len(passed) == 16, result.stdout[-3000:]


# -- a WebSocketServer, reached by a websockets client --------------------------------

HANDLER_TIMEOUT_S = timeout(10)


class EchoHandler(WebSocketRequestHandler):
    timeout = HANDLER_TIMEOUT_S  # a handler waiting for a client that is gone ends all the same

    def handle_websocket(self) -> None:
        while True:
            try:
                message = self.request.recvmsg()
            except WebSocketWantReadError:
                continue  # a blocking socket: the rest of the message follows
            if message is None:
                self.server.closes.append((self.request.close_code, self.request.close_reason))
                return
            self.request.sendmsg(message)

    def do_GET(self) -> None:  # a plain GET is still the handler's own
        body = b"plain\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def echo_websocket_server() -> Iterator[WebSocketServer]:
    server = WebSocketServer(("127.0.0.1", 0), EchoHandler)
    server.closes = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout(10))


def test_a_websocketserver_echoes_a_websockets_client():
    with echo_websocket_server() as server:
        port = server.server_address[1]

        async def talk() -> tuple[list[bytes], int | None]:
            async with ws_connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
                sent = [b"hello", b"", bytes(range(256)) * 1000]
                received = []
                for message in sent:
                    await ws.send(message)
                    received.append(await asyncio.wait_for(ws.recv(), timeout(10)))
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, timeout(10))
            return received, ws.close_code

        received, code = asyncio.run(talk())
        assert received == [b"hello", b"", bytes(range(256)) * 1000]
        assert code == 1000
        wait_until(lambda: server.closes, "the handler to see the close")  # type: ignore[attr-defined]
        assert server.closes == [(1000, None)]  # type: ignore[attr-defined]


def test_a_websocketserver_answers_a_plain_get_and_refuses_a_bad_upgrade():
    with echo_websocket_server() as server:
        port = server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout(10)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_until(sock, b"plain\n").startswith(b"HTTP/1.0 200 ")
        with socket.create_connection(("127.0.0.1", port), timeout(10)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            reply = read_until(sock, b"\r\n\r\n")
            assert reply.startswith(b"HTTP/1.0 400 ") and b"Sec-WebSocket-Key" in reply


def test_a_text_message_is_refused_with_1003_as_upstream_did():
    with echo_websocket_server() as server:
        port = server.server_address[1]

        async def talk() -> tuple[int | None, str | None]:
            async with ws_connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("text")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.recv(), timeout(10))
            return ws.close_code, ws.close_reason

        assert asyncio.run(talk()) == (1003, "Unsupported: Text frames are not supported")
        wait_until(lambda: server.closes, "the handler to see the close")  # type: ignore[attr-defined]
        assert server.closes == [(1003, "Unsupported: Text frames are not supported")]  # type: ignore[attr-defined]


# -- a WebSocket client, through our real proxy ------------------------------------------

@pytest.fixture(autouse=True)
def bounded_connects():
    """WebSocket.connect() has no timeout of its own: the sockets it creates get this one."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout(10))
    yield
    socket.setdefaulttimeout(previous)


@pytest.fixture
def proxy_to_echo():
    echo = TcpServer(echo_handler)
    try:
        with running_proxy("127.0.0.1:0", echo.address) as proxy:
            yield proxy
    finally:
        echo.close()


def test_a_websocket_client_reaches_an_echo_server_through_the_proxy(proxy_to_echo):
    ws = WebSocket()
    ws.connect(proxy_to_echo.url, origin="http://localhost", protocols=["binary"])
    try:
        ws.settimeout(timeout(10))
        assert ws.protocol == "binary"
        ws.sendmsg(b"through the proxy")
        assert read_bytes(ws, len(b"through the proxy")) == b"through the proxy"
        big = os.urandom(300_000)
        ws.send(big)
        assert read_bytes(ws, len(big)) == big  # a TCP stream: the echo comes in messages of any size
        ws.ping(b"p")
        ws.shutdown(socket.SHUT_RDWR, 1000, "done")
        assert read_message(ws) is None
        assert (ws.close_code, ws.close_reason) == (1000, "Locally initiated close")
        assert ws.socket is None
    finally:
        ws.close()


def test_a_wss_client_verifies_the_proxys_certificate(tmp_path, monkeypatch):
    make_ca(tmp_path, "ca")
    make_cert(tmp_path, "server", "one", "ca")
    # connect() takes no TLS context (nor did upstream's): it trusts the default CA store.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    echo = TcpServer(echo_handler)
    try:
        with running_proxy("--cert", str(tmp_path / "server.pem"), "127.0.0.1:0", echo.address) as proxy:
            ws = WebSocket()
            ws.connect(f"wss://localhost:{proxy.port}/")
            try:
                assert isinstance(ws.socket, ssl.SSLSocket)
                payload = os.urandom(100_000)
                ws.sendmsg(payload)
                assert read_bytes(ws, len(payload)) == payload
            finally:
                ws.close()
            make_ca(tmp_path, "otherca")
            monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "otherca.pem"))
            with pytest.raises(ssl.SSLCertVerificationError):
                WebSocket().connect(f"wss://localhost:{proxy.port}/")
    finally:
        echo.close()


def test_a_refused_client_handshake_raises():
    with pytest.raises(ValueError, match="Unknown scheme"):
        WebSocket().connect("ftp://127.0.0.1/")

    def refuse(conn: socket.socket) -> None:
        read_until(conn, b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    server = TcpServer(refuse)
    try:
        with pytest.raises(Exception, match="WebSocket request denied: 403 Forbidden"):
            WebSocket().connect(f"ws://127.0.0.1:{server.port}/")
    finally:
        server.close()


# -- non-blocking use ------------------------------------------------------------------

def test_non_blocking_use_raises_the_want_errors_and_resumes():
    listener = socket.create_server(("127.0.0.1", 0))
    client = WebSocket()
    result: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        request = read_until(conn, b"\r\n\r\n").decode("latin-1")
        headers = dict(line.split(": ", 1) for line in request.split("\r\n")[1:] if ": " in line)
        server = WebSocket()
        server.accept(conn, headers)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # so that 8 MiB cannot fit
        conn.setblocking(False)
        result["server"] = server

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        thread.join(timeout(10))
        server = result["server"]
        assert isinstance(server, WebSocket)
        client.setblocking(False)

        with pytest.raises(WebSocketWantReadError):
            server.recvmsg()  # nothing sent yet
        assert isinstance(WebSocketWantReadError(), ssl.SSLWantReadError)

        # A message that the server's socket cannot take all at once: WantWrite, then the same
        # call again until it goes, while the client reads.
        big = os.urandom(8 * 1024 * 1024)
        received: list[bytes] = []
        deadline = time.monotonic() + timeout(20)
        wanted_write = False
        while True:
            try:
                server.sendmsg(big)
                break
            except WebSocketWantWriteError:
                wanted_write = True
                with pytest.raises(ValueError):
                    server.sendmsg(b"another message")
                drain(client, received)
            assert time.monotonic() < deadline, "the big message never went"
        assert wanted_write
        while not received:
            drain(client, received)
            assert time.monotonic() < deadline, "the big message never arrived"
        assert received == [big]

        # Half a frame: WantRead, until the rest comes.
        frame = Frame(Opcode.BINARY, b"x" * 1000).serialize(mask=True)
        client.socket.sendall(frame[:500])
        wait_readable(server)
        with pytest.raises(WebSocketWantReadError):
            server.recvmsg()
        client.socket.sendall(frame[500:])
        wait_readable(server)
        message = None
        while message is None:
            try:
                message = server.recvmsg()
            except WebSocketWantReadError:
                wait_readable(server)
        assert message == b"x" * 1000
        assert not server.pending()

        client.close()
        wait_readable(server)
        while True:
            try:
                assert server.recvmsg() is None
                break
            except WebSocketWantReadError:
                wait_readable(server)
        assert server.close_code == 1000 and server.socket is None
    finally:
        listener.close()
        client.close()


def drain(ws: WebSocket, received: list[bytes]) -> None:
    select.select([ws], [], [], 0.05)
    while True:
        try:
            message = ws.recvmsg()
        except WebSocketWantReadError:
            return
        assert message is not None
        received.append(message)


def wait_readable(ws: WebSocket) -> None:
    readable, _, _ = select.select([ws], [], [], timeout(10))
    assert readable, "nothing arrived within 10s"


# -- one server-side WebSocket and a raw peer ------------------------------------------------

REQUEST = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "DKURYVK9cRFul1vOZVA56Q=="}


class RecordingWebSocket(WebSocket):
    def __init__(self) -> None:
        super().__init__()
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []

    def handle_ping(self, data: bytes) -> None:
        self.pings.append(data)

    def handle_pong(self, data: bytes) -> None:
        self.pongs.append(data)


@pytest.fixture
def accepted() -> Iterator[tuple[RecordingWebSocket, socket.socket]]:
    """A server-side WebSocket on one end of a socket pair; the test is the client on the other."""
    ours, peer = socket.socketpair()
    ours.settimeout(timeout(10))
    ws = RecordingWebSocket()
    ws.accept(ours, REQUEST)
    assert read_until(peer, b"\r\n\r\n").startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert ws.version == "hybi-13" and ws.protocol == ""
    yield ws, peer
    ws.close()
    peer.close()


def masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def read_to_end(sock: socket.socket) -> bytes:
    return read_until(sock, b"never there")


def test_pings_are_answered_and_handed_to_handle_ping(accepted):
    ws, peer = accepted
    peer.sendall(masked(Opcode.PING, b"hi") + masked(Opcode.PONG, b"ho") + masked(Opcode.BINARY, b"msg"))
    assert ws.recvmsg() == b"msg"
    assert (ws.pings, ws.pongs) == ([b"hi"], [b"ho"])
    assert peer.recv(100) == b"\x8a\x02hi"


@pytest.mark.parametrize("payload,code,reason", [
    (b"\x03\xe9bye", 1001, "bye"),
    (b"\x03\xe8", 1000, None),
    (b"", 1005, "No close status code specified by peer"),
])
def test_a_peers_close_is_echoed_and_reported(accepted, payload, code, reason):
    ws, peer = accepted
    peer.sendall(masked(Opcode.CLOSE, payload))
    assert ws.recvmsg() is None
    assert (ws.close_code, ws.close_reason) == (code, reason)
    assert ws.socket is None
    assert read_to_end(peer) == b"\x88" + bytes([len(payload)]) + payload
    assert ws.recvmsg() is None and ws.sendmsg(b"late") == 0


def test_the_end_of_the_stream_without_a_close_is_1006(accepted):
    ws, peer = accepted
    peer.shutdown(socket.SHUT_WR)
    assert ws.recvmsg() is None
    assert (ws.close_code, ws.close_reason) == (1006, "Connection closed abnormally")


def test_a_protocol_error_closes_with_1002(accepted):
    ws, peer = accepted
    peer.sendall(Frame(Opcode.BINARY, b"not masked").serialize(mask=False))
    assert ws.recvmsg() is None
    assert ws.close_code == 1002 and ws.socket is None
    assert read_to_end(peer).startswith(b"\x88")


def test_close_sends_the_code_and_reason_and_closes_at_once(accepted):
    ws, peer = accepted
    ws.close(4000, "bye")
    assert ws.socket is None and (ws.close_code, ws.close_reason) == (1000, "Locally initiated close")
    assert read_to_end(peer) == b"\x88\x05\x0f\xa0bye"


# -- syslog ---------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True])
def test_the_syslog_handler_writes_to_a_unix_datagram_socket(legacy, tmp_path):
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslogd:
        syslogd.bind(path)
        syslogd.settimeout(timeout(10))
        handler = WebsockifySysLogHandler(address=path, facility=WebsockifySysLogHandler.LOG_DAEMON,
                                          ident="websockify-with-a-long-ident-name", legacy=legacy)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger = logging.getLogger(f"test.syslog.{legacy}")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            logger.warning("two\nlines, \x1b[31m and \u00e9")
            line = syslogd.recv(65536)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.error("")  # an empty text is not sent, as upstream did
            logger.error("after")
            assert syslogd.recv(65536).endswith(b" after")
        finally:
            logger.removeHandler(handler)
            handler.close()
    pri = b"<28>"  # LOG_DAEMON (3) * 8 + warning (4); the ident is cut to 24 characters
    body = b"WARNING two lines, \\x1b[31m and " + "\u00e9".encode()
    if legacy:
        assert line == pri + b"websockify-with-a-long-i[" + str(os.getpid()).encode() + b"]: \xef\xbb\xbf" + body
    else:
        match = re.fullmatch(rb"<28>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\d+) - - (.*)",
                             line, re.S)
        assert match, line
        assert match.group(2) == socket.gethostname().encode()
        assert match.group(3) == b"websockify-with-a-long-i"
        assert int(match.group(4)) == os.getpid()
        assert match.group(5) == b"\xef\xbb\xbf" + body


# -- small helpers ---------------------------------------------------------------------

def read_until(sock: socket.socket, end: bytes) -> bytes:
    sock.settimeout(timeout(10))
    data = b""
    while end not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_message(ws: WebSocket) -> bytes | None:
    """The next message on a blocking WebSocket (WantRead means: part of it is still to come)."""
    deadline = time.monotonic() + timeout(10)
    while time.monotonic() < deadline:
        try:
            return ws.recvmsg()
        except WebSocketWantReadError:
            continue
    raise AssertionError("no message within 10s")


def read_bytes(ws: WebSocket, length: int) -> bytes:
    data = b""
    while len(data) < length:
        message = read_message(ws)
        assert message is not None, f"closed after {len(data)} of {length} bytes"
        data += message
    return data


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + timeout(10)
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)

