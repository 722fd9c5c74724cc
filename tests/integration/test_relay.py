"""The relay end to end: real proxy process, real TCP targets, websockets client."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import threading
import time

import psutil
import pytest
from helpers import (
    SinkRecorder,
    TcpServer,
    pattern_bytes,
    running_proxy,
    timeout,
    unread_bytes,
    unsent_bytes,
    wait_steady,
    ws_connect,
)
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.frames import Frame, Opcode

MIB = 1024 * 1024


def run(coro, seconds: float = 60):
    async def bounded():
        async with asyncio.timeout(timeout(seconds)):
            return await coro
    return asyncio.run(bounded())


async def _bulk_echo(url: str, subprotocol: str, total: int, message: int = 64 * 1024) -> tuple[str, str]:
    """Send `total` pseudo-random bytes and read them back; return both digests."""
    chunk = os.urandom(message)
    sent_digest, recv_digest = hashlib.sha256(), hashlib.sha256()
    async with ws_connect(url, subprotocols=[subprotocol], max_size=4 * MIB) as ws:
        assert ws.subprotocol == subprotocol

        async def sender():
            for i in range(total // message):
                data = bytes([i & 0xFF]) + chunk[1:]
                sent_digest.update(data)
                await ws.send(base64.b64encode(data).decode() if subprotocol == "base64" else data)

        async def receiver():
            received = 0
            while received < total:
                msg = await ws.recv()
                data = base64.b64decode(msg) if subprotocol == "base64" else msg
                assert isinstance(data, bytes)
                recv_digest.update(data)
                received += len(data)
            assert received == total

        await asyncio.gather(sender(), receiver())
    return sent_digest.hexdigest(), recv_digest.hexdigest()


@pytest.mark.parametrize("subprotocol", ["binary", "base64"])
def test_64_mib_each_way_intact(echo_proxy, subprotocol):
    sent, received = run(_bulk_echo(echo_proxy.url, subprotocol, 64 * MIB), 180)
    assert sent == received
    echo_proxy.wait_log(r"up=67108864 down=67108864 .*close=1000")


def test_no_subprotocol_means_binary_and_text_frames_forward_utf8(echo_proxy):
    async def scenario():
        async with ws_connect(echo_proxy.url) as ws:
            assert ws.subprotocol is None
            await ws.send("héllo")  # a text frame: forwarded as its UTF-8 bytes
            assert await ws.recv() == "héllo".encode()
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
    run(scenario())


def test_subprotocol_list_with_spaces_and_client_order(echo_proxy):
    sock = _raw_handshake(echo_proxy.port, "chat, base64 ,binary")
    sock.sendall(Frame(Opcode.TEXT, base64.b64encode(b"b64")).serialize(mask=True))
    assert sock.recv(100)[2:] == base64.b64encode(b"b64")
    sock.close()
    assert b"Sec-WebSocket-Protocol: base64\r\n" in _LAST_HEAD[0]


def test_500_concurrent_connections_all_echo(echo_proxy):
    count = 500

    async def one(i: int, ready: asyncio.Barrier):
        async with ws_connect(echo_proxy.url, subprotocols=["binary"], open_timeout=timeout(60)) as ws:
            await ready.wait()
            payload = f"conn {i} ".encode() * 20
            for _ in range(3):
                await ws.send(payload)
                assert await ws.recv() == payload
            return i

    async def scenario():
        ready = asyncio.Barrier(count)
        return await asyncio.gather(*(one(i, ready) for i in range(count)))

    assert sorted(run(scenario(), 120)) == list(range(count))


class PatternSource:
    """A target that sends a repeating pattern as fast as the proxy takes it, counting what it sent."""

    BLOCK = 64 * 1024

    def __init__(self) -> None:
        # pattern_bytes is slow in Python: the stream is these 4 blocks, again and again.
        self.blocks = [pattern_bytes(i * self.BLOCK, self.BLOCK) for i in range(4)]
        self.sent = 0
        self.conn: socket.socket | None = None
        self._stop = threading.Event()
        self.server = TcpServer(self._send)

    def _send(self, conn: socket.socket) -> None:
        self.conn = conn
        while not self._stop.is_set():
            conn.sendall(self.blocks[self.sent // self.BLOCK % 4])
            self.sent += self.BLOCK

    def close(self) -> None:
        self._stop.set()
        self.server.close()


def test_stalled_client_bounds_proxy_memory_and_stream_resumes_intact():
    """The client stops reading while the target keeps sending as fast as it can."""
    source = PatternSource()
    try:
        with running_proxy("127.0.0.1:0", source.server.address) as proxy:
            rss = psutil.Process(proxy.proc.pid).memory_info

            def pipeline_full(client: socket.socket) -> object:
                """The proxy takes nothing from the source (its bytes wait in the source's send
                queue) and sends nothing to the client (whose receive queue stands still)."""
                assert source.conn is not None
                waiting_at_source, waiting_at_client = unsent_bytes(source.conn), unread_bytes(client)
                return (source.sent, waiting_at_source, waiting_at_client) if waiting_at_source else None

            async def scenario():
                async with ws_connect(proxy.url, subprotocols=["binary"], max_queue=2) as ws:
                    first = await ws.recv()
                    baseline = rss().rss
                    # From here the client reads nothing (websockets stops at max_queue).
                    client = ws.transport.get_extra_info("socket")
                    await asyncio.to_thread(wait_steady, lambda: pipeline_full(client), 30,
                                            "every buffer between the source and the client to fill up")
                    stalled = rss().rss
                    received = bytearray(first)
                    while len(received) < 48 * MIB:
                        received += await ws.recv()
                    return baseline, stalled, bytes(received)

            baseline, stalled, received = run(scenario(), 120)
            growth = stalled - baseline
            print(f"proxy RSS growth while stalled: {growth / MIB:.2f} MiB")
            assert growth < 16 * MIB, f"proxy RSS grew by {growth / MIB:.1f} MiB while the client stalled"
            expected_cycle = b"".join(source.blocks)
            cycle = len(expected_cycle)
            for start in range(0, len(received) - cycle, cycle):
                assert received[start:start + cycle] == expected_cycle, f"stream corrupted near byte {start}"
    finally:
        source.close()


def test_target_refused_closes_1011_and_proxy_keeps_serving():
    # Bound and not listening: connections are refused, and the port stays ours.
    with socket.socket() as target:
        target.bind(("127.0.0.1", 0))
        with running_proxy("127.0.0.1:0", "127.0.0.1:%d" % target.getsockname()[1]) as proxy:
            async def refused():
                async with ws_connect(proxy.url) as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        await ws.recv()
                    return info.value.rcvd
            close = run(refused())
            assert close.code == 1011
            assert close.reason == "Failed to connect to downstream server"
            proxy.wait_log(r"target unreachable: .*refused")

            # The same proxy serves normally once the target is up.
            target.listen(1)

            async def works():
                async with ws_connect(proxy.url) as ws:
                    conn = await asyncio.to_thread(target.accept)
                    with conn[0]:
                        conn[0].sendall(b"up")
                        assert await ws.recv() == b"up"
            run(works())


def test_target_closing_mid_stream_delivers_everything_then_1000():
    payload = os.urandom(3 * MIB + 17)

    def send_and_close(conn: socket.socket) -> None:
        conn.sendall(payload)

    server = TcpServer(send_and_close)
    try:
        with running_proxy("127.0.0.1:0", server.address) as proxy:
            async def scenario():
                received = bytearray()
                async with ws_connect(proxy.url, max_size=None) as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        while True:
                            received += await ws.recv()
                return bytes(received), info.value.rcvd
            received, close = run(scenario())
            assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
            assert (close.code, close.reason) == (1000, "Target closed")
    finally:
        server.close()


_LAST_HEAD = [b""]


def _raw_handshake(port: int, subprotocol: str = "binary") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "connection closed during handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    _LAST_HEAD[0] = head
    return sock


def test_client_vanishing_without_close_frame_gives_target_every_byte_then_eof():
    sink = SinkRecorder()
    server = TcpServer(sink)
    try:
        with running_proxy("127.0.0.1:0", server.address) as proxy:
            sock = _raw_handshake(proxy.port)
            digest, total = hashlib.sha256(), 0
            for i in range(200):
                data = os.urandom(1000 + i * 37)
                digest.update(data)
                total += len(data)
                sock.sendall(Frame(Opcode.BINARY, data).serialize(mask=True))
            sock.close()  # no close frame
            assert sink.get() == (total, digest.hexdigest())
            proxy.wait_log(rf"up={total} down=0 .*close=1006")
    finally:
        server.close()


def test_client_close_frame_gives_target_eof_after_every_byte():
    sink = SinkRecorder()
    server = TcpServer(sink)
    try:
        with running_proxy("127.0.0.1:0", server.address) as proxy:
            async def scenario():
                digest = hashlib.sha256()
                async with ws_connect(proxy.url) as ws:
                    for _ in range(50):
                        data = os.urandom(50000)
                        digest.update(data)
                        await ws.send(data)
                return digest.hexdigest()
            expected = run(scenario())
            assert sink.get() == (50 * 50000, expected)
    finally:
        server.close()


def test_oversized_message_closes_1009_without_disturbing_other_sessions(echo_server):
    with running_proxy("--max-message-size", "1000", "127.0.0.1:0", echo_server.address) as proxy:
        async def scenario():
            async with ws_connect(proxy.url) as good:
                await good.send(b"a" * 1000)
                assert await good.recv() == b"a" * 1000
                async with ws_connect(proxy.url) as bad:
                    await bad.send(b"b" * 1001)
                    with pytest.raises(ConnectionClosed) as info:
                        await bad.recv()
                    assert info.value.rcvd.code == 1009
                await good.send(b"still here")
                assert await good.recv() == b"still here"
        run(scenario())


def test_protocol_error_closes_1002(echo_proxy):
    sock = _raw_handshake(echo_proxy.port)
    sock.sendall(Frame(Opcode.BINARY, b"x").serialize(mask=False))  # clients must mask
    data = b""
    while len(data) < 4:
        chunk = sock.recv(100)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1002


def test_invalid_base64_closes_1007(echo_proxy):
    async def scenario():
        async with ws_connect(echo_proxy.url, subprotocols=["base64"]) as ws:
            await ws.send("not base64!")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code
    assert run(scenario()) == 1007


def test_ping_is_answered(echo_proxy):
    async def scenario():
        async with ws_connect(echo_proxy.url) as ws:
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, timeout(5))
    run(scenario())


UPGRADE_13 = (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n")


@pytest.mark.parametrize("garbage,status", [
    (b"\x00\x01\x02garbage\r\n\r\n", None),  # not HTTP: dropped without a word
    (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 400),  # no key
    (b"BREW /pot HTTP/1.1\r\n\r\n", 400),  # not a method
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    (b"GET /\r\n\r\n", 505),  # HTTP/0.9
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),  # the HTTP/2 preface
    (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"GET / HTTP/1.0\r\n" + UPGRADE_13 + b"\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + UPGRADE_13.replace(b"Version: 13", b"Version: 8") + b"\r\n", 426),
])
def test_garbage_instead_of_handshake_is_refused_and_server_keeps_serving(echo_proxy, garbage, status):
    async def scenario():
        async with ws_connect(echo_proxy.url) as good:
            reader, writer = await asyncio.open_connection("127.0.0.1", echo_proxy.port)
            writer.write(garbage)
            reply = await reader.read()  # the proxy answers (or not) and closes
            writer.close()
            await good.send(b"ok")
            assert await good.recv() == b"ok"
            return reply
    reply = run(scenario())
    if status is None:
        assert reply == b""
    else:
        assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:80]


def test_stalled_handshake_is_dropped_after_timeout(echo_server):
    # Only the first bytes of a request, then silence: the proxy must not wait forever,
    # and other clients are unaffected while it hangs.
    with running_proxy("--handshake-timeout", "2", "127.0.0.1:0", echo_server.address) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(5)) as slow:
        started = time.monotonic()
        slow.sendall(b"GET / HT")

        async def scenario():
            async with ws_connect(proxy.url) as ws:
                await ws.send(b"x")
                assert await ws.recv() == b"x"
        run(scenario())
        slow.settimeout(timeout(20))
        assert slow.recv(10) == b""
        assert 1.5 < time.monotonic() - started < timeout(10)
        proxy.wait_log("dropped: handshake not complete within 2s")


def test_unix_target(tmp_path):
    path = str(tmp_path / "echo.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with running_proxy("--unix-target", path, "127.0.0.1:0") as proxy:
            async def scenario():
                async with ws_connect(proxy.url) as ws:
                    await ws.send(b"unix")
                    assert await ws.recv() == b"UNIX"
            run(scenario())
    finally:
        server.close()


def test_sigterm_closes_sessions_with_1001(echo_proxy):
    async def scenario():
        async with ws_connect(echo_proxy.url) as ws:
            await ws.send(b"x")
            await ws.recv()
            echo_proxy.proc.terminate()
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code
    assert run(scenario()) == 1001
    assert echo_proxy.proc.wait(timeout(10)) == 0


def _low_file_limit() -> None:
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def test_a_low_soft_file_limit_does_not_cap_clients(echo_server):
    """Started with a soft limit of 256 descriptors (as a service manager might), 400 clients
    (800 descriptors in the proxy) are all served: websockify raises its own soft limit."""
    with running_proxy("127.0.0.1:0", echo_server.address, preexec_fn=_low_file_limit) as proxy:
        async def one(i: int, all_open: asyncio.Barrier):
            async with ws_connect(proxy.url, open_timeout=timeout(60)) as ws:
                await ws.send(b"%d" % i)
                assert await ws.recv() == b"%d" % i
                await all_open.wait()
            return i

        async def scenario():
            all_open = asyncio.Barrier(400)
            return await asyncio.gather(*(one(i, all_open) for i in range(400)))
        assert sorted(run(scenario(), 120)) == list(range(400))


def _tiny_file_limit() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))


def test_running_out_of_descriptors_is_survived(echo_server):
    """With a hard limit of 48 descriptors, 60 clients at once would exhaust them: the
    proxy serves as many as its descriptors allow (each needs two), says so, turns the
    rest away, and serves again once clients leave."""
    with running_proxy("127.0.0.1:0", echo_server.address, preexec_fn=_tiny_file_limit) as proxy:
        async def crowd():
            decided, all_decided = [], asyncio.Event()

            def decide(outcome: str) -> str:
                decided.append(outcome)
                if len(decided) == 60:
                    all_decided.set()
                return outcome

            async def one():
                try:
                    async with ws_connect(proxy.url, open_timeout=timeout(5)) as ws:
                        await ws.send(b"x")
                        await ws.recv()
                        decide("served")
                        await all_decided.wait()  # served clients hold their descriptors
                        return "served"
                except InvalidStatus as exc:  # over the limit, within the slack: told why
                    return decide(f"refused {exc.response.status_code}")
                except InvalidMessage:  # past the slack: closed without a word
                    return decide("dropped")
            return await asyncio.gather(*(one() for _ in range(60)))

        results = run(crowd(), 60)
        # The rest are turned away: clients still sending their heads are evicted to make
        # room (closed without a word), and a 503 comes only once none is left to evict.
        assert set(results) <= {"served", "refused 503", "dropped"} and "dropped" in results, results
        assert results.count("served") == 6

        async def afterwards():
            async with ws_connect(proxy.url) as ws:
                await ws.send(b"still serving")
                assert await ws.recv() == b"still serving"
        run(afterwards())
        assert proxy.proc.poll() is None
        proxy.wait_log(r"the open-file limit \(48\) allows 6 clients at once")
        proxy.wait_log(r"evicted|dropped: ")


def test_target_closing_first_ends_the_session_at_once_on_either_loop(echo_proxy_loop):
    """The target says hello and closes; the client answers the close: the session ends
    without waiting out a linger (asyncio's loop stops reading after a kept-open EOF)."""
    def hello(conn: socket.socket) -> None:
        conn.sendall(b"hello")
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass

    server = TcpServer(hello)
    try:
        with running_proxy("127.0.0.1:0", server.address, env={"WEBSOCKIFY_EVENT_LOOP": echo_proxy_loop}) as proxy:
            async def scenario():
                async with ws_connect(proxy.url) as ws:
                    assert await ws.recv() == b"hello"
                    with pytest.raises(ConnectionClosed):
                        await ws.recv()
            run(scenario())
            match = proxy.wait_log(r"up=0 down=5 duration=(\d+\.\d+)s close=1000")
            assert float(match.group(1)) < 2.0
    finally:
        server.close()
