"""Sessions that make no progress (issue 17, items 4 and 13): a client that broke the
protocol is not read after our close; a session blocked in either direction with
nothing moving is cut within its stall timeout; an idle session is never cut."""
from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import psutil
import pytest
from helpers import TcpServer, running_proxy, timeout, wait_for, ws_connect
from rawws import frame, open_websocket, read_until_close, send_until_stalled

MIB = 1024 * 1024


def _read_chars(pid: int) -> int:
    """Bytes the process has read with read()/recv() so far, sockets included."""
    return int(psutil.Process(pid).io_counters().read_chars)


_OVERSIZED = bytes([0x82, 0xFF]) + struct.pack("!Q", 64 * MIB) + b"\0\0\0\0"  # a 64 MiB frame's header
_FRAGMENTS = frame(0x2, b"", fin=False) + frame(0x0, b"", fin=False) * 1100  # past MAX_FRAGMENTS


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
@pytest.mark.parametrize(("opening", "code"), [(_OVERSIZED, 1009), (_FRAGMENTS, 1008)], ids=["1009", "1008"])
def test_client_flooding_after_an_error_close_is_cut_soon_and_not_read(echo_server, opening, code, loop):
    """Item 13: the close frame goes out, then nothing more is read; the connection is
    cut as soon as the close frame has reached the client (it used to be read and
    discarded for the 5 s close timeout: gigabytes)."""
    with running_proxy("--max-message-size", "1000", "127.0.0.1:0", echo_server.address,
                       env={"WEBSOCKIFY_EVENT_LOOP": loop}) as proxy:
        sock = open_websocket(proxy.port)
        before = _read_chars(proxy.proc.pid)
        sock.sendall(opening)  # then junk, as fast as we can
        sent = [0]
        cut_at = [0.0]

        def flood() -> None:
            junk = b"x" * 65536
            deadline = time.monotonic() + timeout(10)
            try:
                while time.monotonic() < deadline:
                    sent[0] += sock.send(junk)
            except OSError:  # reset: the proxy cut the connection
                cut_at[0] = time.monotonic()

        started = time.monotonic()
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            assert read_until_close(sock) == code
            flooder.join(timeout(15))
        finally:
            sock.close()
        assert cut_at[0], "the connection was never cut while the client kept sending"
        cut_after = cut_at[0] - started
        read = _read_chars(proxy.proc.pid) - before
        print(f"cut after {cut_after:.3f}s; client sent {sent[0] / MIB:.1f} MiB, proxy read {read / MIB:.2f} MiB")
        assert cut_after < timeout(1.0), f"the connection lived {cut_after:.2f}s after the close"
        assert read < 8 * MIB, f"the proxy read {read / MIB:.1f} MiB after the close"
        proxy.wait_log(rf"close={code}")


# -- stalled sessions (item 4): with --heartbeat 1 the stall timeout is 2 s ----------

HEARTBEAT_S = 1
STALL_S = 2 * HEARTBEAT_S  # proxy/pump.py: two heartbeat intervals when --heartbeat is set


class Holder:
    """A target that accepts and then neither reads nor writes until the test ends;
    or, with `send`, writes as fast as it can."""

    def __init__(self, send: bool = False) -> None:
        self.release = threading.Event()
        self.connected = threading.Event()
        self._send = send
        self.server = TcpServer(self)

    def __call__(self, conn: socket.socket) -> None:
        self.connected.set()
        if self._send:
            block = b"d" * 65536
            conn.settimeout(0.1)
            while not self.release.is_set():
                try:
                    conn.sendall(block)
                except TimeoutError:
                    continue
        else:
            self.release.wait(timeout(60))

    def close(self) -> None:
        self.release.set()
        self.server.close()


def _fds(pid: int) -> int:
    return psutil.Process(pid).num_fds()


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_target_not_reading_while_the_client_closes_releases_the_session(loop):
    """The client's close and FIN wait behind the proxy's full receive window: nothing
    moves, so the session is cut after the stall timeout and its descriptors released."""
    target = Holder()
    try:
        with running_proxy("--heartbeat", str(HEARTBEAT_S), "127.0.0.1:0", target.server.address,
                           env={"WEBSOCKIFY_EVENT_LOOP": loop}) as proxy:
            baseline = _fds(proxy.proc.pid)
            sock = open_websocket(proxy.port)
            assert target.connected.wait(timeout(10))
            send_until_stalled(sock, frame(0x2, b"u" * 65536))
            started = time.monotonic()
            sock.shutdown(socket.SHUT_WR)  # a normal end: its FIN waits behind our bytes
            proxy.wait_log(r"stalled: the target does not read", timeout(STALL_S * 1.25 + 5))
            wait_for(lambda: _fds(proxy.proc.pid) <= baseline, 5, "the session's descriptors to be released")
            elapsed = time.monotonic() - started
            assert elapsed <= timeout(STALL_S * 1.25 + 3), elapsed  # it stalled before `started`
            proxy.wait_log(r"error=stalled: the target does not read")
            assert "Traceback" not in proxy.log
            sock.close()
    finally:
        target.close()


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_client_not_reading_is_cut_after_the_stall_timeout(loop):
    target = Holder(send=True)
    try:
        with running_proxy("--heartbeat", str(HEARTBEAT_S), "127.0.0.1:0", target.server.address,
                           env={"WEBSOCKIFY_EVENT_LOOP": loop}) as proxy:
            baseline = _fds(proxy.proc.pid)
            sock = open_websocket(proxy.port)  # and never reads
            started = time.monotonic()
            proxy.wait_log(r"stalled: the client does not read", timeout(STALL_S * 1.25 + 10))
            wait_for(lambda: _fds(proxy.proc.pid) <= baseline, 5, "the session's descriptors to be released")
            assert time.monotonic() - started >= STALL_S
            assert "the target does not read" not in proxy.log
            proxy.wait_log(r"error=stalled: the client does not read")
            assert "Traceback" not in proxy.log
            sock.close()
    finally:
        target.close()


def test_idle_session_with_nothing_pending_is_not_cut(echo_server):
    with running_proxy("--heartbeat", str(HEARTBEAT_S), "127.0.0.1:0", echo_server.address) as proxy:
        async def scenario():
            async with ws_connect(proxy.url, subprotocols=["binary"]) as ws:  # answers the pings
                await ws.send(b"before")
                assert await ws.recv() == b"before"
                await asyncio.sleep(STALL_S * 2)  # idle: twice the stall timeout
                await ws.send(b"after")
                assert await ws.recv() == b"after"
        asyncio.run(asyncio.wait_for(scenario(), timeout(30)))
        assert "stalled" not in proxy.log


def test_stall_timeout_option_sets_the_bound():
    """--stall-timeout 1.5 without --heartbeat: cut after 1.5 s (the default would be 60)."""
    target = Holder(send=True)
    try:
        with running_proxy("--stall-timeout", "1.5", "127.0.0.1:0", target.server.address) as proxy:
            sock = open_websocket(proxy.port)  # and never reads
            started = time.monotonic()
            proxy.wait_log(r"stalled: the client does not read \(nothing moved for 1\.5s\)", timeout(1.5 * 1.25 + 10))
            assert time.monotonic() - started >= 1.5
            sock.close()
    finally:
        target.close()


def test_stall_timeout_zero_never_cuts():
    """--stall-timeout 0 with --heartbeat 1: a session blocked for three times the
    heartbeat's stall bound is still open (the client may resume reading)."""
    target = Holder(send=True)
    try:
        with running_proxy("--stall-timeout", "0", "--heartbeat", str(HEARTBEAT_S), "127.0.0.1:0",
                           target.server.address) as proxy:
            sock = open_websocket(proxy.port)  # and does not read for now
            assert target.connected.wait(timeout(10))
            time.sleep(3 * STALL_S)
            assert "stalled" not in proxy.log
            sock.settimeout(timeout(10))
            assert sock.recv(65536)  # the session is alive: the target's bytes are there to read
            sock.close()
    finally:
        target.close()
