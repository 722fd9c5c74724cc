"""--heartbeat, --idle-timeout, --timeout and --run-once, with real clients and processes."""
from __future__ import annotations

import socket
import sys
import time

from helpers import reserved_port, running_proxy, start_proxy, timeout, wait_for
from rawws import exchange, frame, open_websocket, read_frame


def test_heartbeat_pings_an_idle_client_and_drops_a_dead_one(echo_server):
    with running_proxy("--heartbeat", "0.5", "127.0.0.1:0", echo_server.address) as proxy:
        alive = open_websocket(proxy.port)
        dead = open_websocket(proxy.port)
        started = time.monotonic()
        # The live client answers every ping for a while; the session goes on.
        pings = 0
        while time.monotonic() - started < 3.0:
            opcode, payload = read_frame(alive)
            assert opcode == 0x9
            pings += 1
            alive.sendall(frame(0xA, payload))
        assert pings >= 4  # one every interval (0.5 s): 6; every other interval, as before: 3
        alive.sendall(frame(0x2, b"still"))
        assert read_frame(alive) == (0x2, b"still")
        # The other one never answered: dropped, with a log line.
        proxy.wait_log("no answer to a heartbeat ping: dropping the client")
        dead.settimeout(timeout(5))
        frames = []
        try:
            while True:
                frames.append(read_frame(dead)[0])
        except (EOFError, ConnectionError):
            pass
        assert frames and set(frames) == {0x9}
        proxy.wait_log("error=heartbeat: the client did not answer")
        alive.close()
        dead.close()


def test_a_busy_client_is_pinged_too_and_kept(echo_server):
    """Upstream's promise, "a ping every N seconds": what a proxy in front counts is what
    we send, whatever the client sends. A client that sends but never answers pings is
    alive all the same."""
    with running_proxy("--heartbeat", "0.5", "127.0.0.1:0", echo_server.address) as proxy:
        ws = open_websocket(proxy.port)
        started = time.monotonic()
        pings = 0
        while time.monotonic() - started < 2.5:
            ws.sendall(frame(0x2, b"busy"))
            opcode, _ = read_frame(ws)
            while opcode == 0x9:  # not answered: its data shows it is alive
                pings += 1
                opcode, _ = read_frame(ws)
            assert opcode == 0x2
            time.sleep(0.1)
        assert pings >= 3
        assert "no answer to a heartbeat ping" not in proxy.log
        ws.close()


def test_idle_timeout_counts_websocket_sessions_only(echo_server):
    proxy = start_proxy("--idle-timeout", "1", "127.0.0.1:0", echo_server.address)
    try:
        ws = open_websocket(proxy.port)
        time.sleep(1.5)  # longer than the idle timeout, with a session open
        assert proxy.proc.poll() is None
        ws.sendall(frame(0x2, b"x"))
        assert read_frame(ws) == (0x2, b"x")
        ws.close()
        closed = time.monotonic()
        exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP is not a session
        assert proxy.proc.wait(timeout(10)) == 0
        assert 0.8 < time.monotonic() - closed < timeout(4)
        proxy.wait_log("--idle-timeout: no session for 1s")
    finally:
        proxy.stop()


def test_timeout_stops_accepting_then_waits_for_the_last_session(echo_server):
    proxy = start_proxy("--timeout", "1", "127.0.0.1:0", echo_server.address)
    try:
        ws = open_websocket(proxy.port)
        proxy.wait_log("--timeout: 1s since start; no new connections")
        try:
            refused = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(2))
            refused.close()
            accepted = True
        except ConnectionRefusedError:
            accepted = False
        assert not accepted
        ws.sendall(frame(0x2, b"still served"))
        assert read_frame(ws) == (0x2, b"still served")
        assert proxy.proc.poll() is None
        ws.close()
        assert proxy.proc.wait(timeout(10)) == 0
    finally:
        proxy.stop()


def test_run_once_exits_after_the_first_websocket_session(echo_server):
    proxy = start_proxy("--run-once", "127.0.0.1:0", echo_server.address)
    try:
        exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        ws = open_websocket(proxy.port)
        ws.sendall(frame(0x2, b"once"))
        assert read_frame(ws) == (0x2, b"once")
        assert proxy.proc.poll() is None
        ws.close()
        assert proxy.proc.wait(timeout(10)) == 0
        proxy.wait_log("--run-once: the WebSocket session ended")
    finally:
        proxy.stop()


def test_idle_timeout_stops_a_wrapped_program(tmp_path):
    pid_file = tmp_path / "child.pid"
    with reserved_port() as port:
        script = (f"import os, socket, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                  f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(120)")
        proxy = start_proxy("--idle-timeout", "1", str(port), "--", sys.executable, "-c", script)
        try:
            wait_for(pid_file.exists, 20, "the wrapped program")
            child = int(pid_file.read_text())
            assert proxy.proc.wait(timeout(20)) == 0
            wait_for(lambda: not _alive(child), 10, "the wrapped program to be gone")
        finally:
            proxy.stop()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_heartbeat_spares_a_client_we_are_not_reading():
    """While the target does not read, the client's pongs wait unread in the kernel:
    that client is not dead, and must not be dropped for it."""
    import threading

    from helpers import TcpServer
    release = threading.Event()
    target = TcpServer(lambda conn: release.wait(timeout(30)))
    try:
        with running_proxy("--heartbeat", "0.3", "127.0.0.1:0", target.address) as proxy:
            ws = open_websocket(proxy.port)
            ws.settimeout(0.5)
            chunk = frame(0x2, b"z" * 60000)
            try:
                while True:
                    ws.sendall(chunk)
            except socket.timeout:
                pass  # every buffer is full: the proxy is not reading this client
            time.sleep(2)  # several heartbeat intervals with reads paused
            assert "no answer to a heartbeat ping" not in proxy.log
            ws.close()
    finally:
        release.set()
        target.close()


def test_sighup_after_timeout_is_still_handled(echo_server):
    proxy = start_proxy("--timeout", "0.5", "127.0.0.1:0", echo_server.address)
    try:
        ws = open_websocket(proxy.port)  # keeps it running past the timeout
        proxy.wait_log("--timeout: 0.5s since start; no new connections")
        proxy.proc.send_signal(__import__("signal").SIGHUP)
        ws.sendall(frame(0x2, b"still"))
        assert read_frame(ws) == (0x2, b"still")
        assert proxy.proc.poll() is None and "Traceback" not in proxy.log
        ws.close()
        assert proxy.proc.wait(timeout(10)) == 0
        assert "Traceback" not in proxy.log
    finally:
        proxy.stop()
