"""systemd integration with systemd's own tools: the notification protocol (a datagram
socket bound by the test, as systemd binds one), socket activation through
systemd-socket-activate, journal logging, and `systemd-analyze verify` on the example units."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import ROOT, reserved_port, running_proxy, start_proxy, timeout, wait_for
from rawws import frame, open_unix_websocket, open_websocket, read_frame, read_head, status_of, upgrade_request

from websockify.protocol.proxy_header import encode_v2

VENV_WEBSOCKIFY = os.path.join(os.path.dirname(sys.executable), "websockify")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is needed (.ci/run installs the systemd package)")
    return path


class NotifySocket:
    """What systemd listens on for sd_notify(3) messages."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path if not path.startswith("@") else "\0" + path[1:])
        self.sock.settimeout(timeout(20))
        self.path = path

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def until(self, key: str, seconds: float = 20) -> list[dict[str, str]]:
        seen = []
        deadline = time.monotonic() + timeout(seconds)
        while time.monotonic() < deadline:
            message = self.next()
            seen.append(message)
            if key in message:
                return seen
        raise AssertionError(f"no {key} within {seconds}s: {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_only_once_the_port_accepts_then_status_reload_stopping(tmp_path, echo_server, abstract):
    path = f"@websockify-test-{os.getpid()}-{abstract}" if abstract else str(tmp_path / "notify")
    notify = NotifySocket(path)
    proxy = start_proxy("127.0.0.1:0", echo_server.address, env={"NOTIFY_SOCKET": path}, wait_listening=False)
    try:
        ready = notify.until("READY")[-1]
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", ready["STATUS"]).group(1))
        # READY=1 came after the port accepts: connecting at once works.
        ws = open_websocket(port)
        assert ready["MAINPID"] == str(proxy.proc.pid) and "0 sessions" in ready["STATUS"]
        assert notify.until("STATUS")[-1]["STATUS"].endswith("1 session")
        ws.close()
        proxy.proc.send_signal(signal.SIGHUP)
        reloading = notify.until("RELOADING")[-1]
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert "READY" in notify.until("READY")[-1]
        proxy.proc.send_signal(signal.SIGTERM)
        assert "STOPPING" in notify.until("STOPPING")[-1]
        assert proxy.proc.wait(timeout(10)) == 0
    finally:
        proxy.stop()
        notify.close()


def test_watchdog_keepalives_at_half_the_period(tmp_path, echo_server):
    notify = NotifySocket(str(tmp_path / "notify"))
    with running_proxy("127.0.0.1:0", echo_server.address,
                       env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"}):
        notify.until("READY")
        started = time.monotonic()
        beats = [m for m in (notify.next() for _ in range(6)) if "WATCHDOG" in m]
        took = time.monotonic() - started
        assert len(beats) >= 5 and 0.6 < took < timeout(3)  # every 0.2 s
    notify.close()


def test_notify_variables_are_not_passed_to_a_wrapped_program(tmp_path):
    notify = NotifySocket(str(tmp_path / "notify"))
    out = tmp_path / "env"
    script = f"import os, socket, time; open({str(out)!r}, 'w').write(repr(sorted(k for k in os.environ " \
             f"if k.startswith(('NOTIFY', 'WATCHDOG', 'LISTEN'))))); s = socket.socket(); " \
             f"s.bind(('127.0.0.1', PORT)); s.listen(); time.sleep(60)"
    with reserved_port() as port, running_proxy(
            str(port), "--", sys.executable, "-c", script.replace("PORT", str(port)),
            env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "30000000"}):
        ready = notify.until("READY")[-1]
        assert "wrapped program running" in ready["STATUS"]
        wait_for(out.exists, 10, "the program's environment")
        assert out.read_text() == "[]"
    notify.close()


# -- socket activation ----------------------------------------------------------------

def _activated(listen: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    tool = need("systemd-socket-activate")
    return subprocess.Popen([tool, "-l", listen, VENV_WEBSOCKIFY, *args], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _echo_once_then_stop(proc: subprocess.Popen, connect) -> str:
    """One echo on the session `connect()` opens once the activated websockify answers; then
    stop it (exit 0). Returns what it wrote on stderr."""
    try:
        ws = wait_for(connect, 20, "the activated websockify")
        ws.sendall(frame(0x2, b"activated"))
        assert read_frame(ws) == (0x2, b"activated")
        ws.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout(10)) == 0
    return proc.stderr.read()


def test_socket_activation_on_tcp_without_a_source_address(echo_server):
    with reserved_port() as port:
        proc = _activated(f"127.0.0.1:{port}", echo_server.address)
        assert f"listening on 127.0.0.1:{port}" in _echo_once_then_stop(proc, lambda: _connect(port))


def _with_proxy_header(port: int):
    """A session that starts with a PROXY v2 header naming 203.0.113.9:4000, or None (not up yet)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    except OSError:
        return None
    sock.sendall(encode_v2(("203.0.113.9", 4000), ("127.0.0.1", port)) + upgrade_request("/"))
    assert status_of(read_head(sock)) == 101
    return sock


def test_socket_activation_with_the_proxy_protocol(echo_server):
    with reserved_port() as port:
        proc = _activated(f"127.0.0.1:{port}", "--proxy-protocol", echo_server.address)
        stderr = _echo_once_then_stop(proc, lambda: _with_proxy_header(port))
        assert re.search(r"203\.0\.113\.9:4000 target=", stderr)  # the client the header named


def test_socket_activation_on_a_unix_socket(tmp_path, echo_server):
    path = tmp_path / "activated.sock"
    proc = _activated(str(path), echo_server.address)
    try:
        wait_for(path.exists, 10, "systemd-socket-activate's socket")
        with open_unix_websocket(str(path)) as sock:
            sock.sendall(frame(0x2, b"unix"))
            assert read_frame(sock) == (0x2, b"unix")
    finally:
        proc.terminate()
        proc.wait(timeout(10))


def test_socket_activation_source_address_must_match(echo_server):
    with reserved_port() as port:
        proc = _activated(f"127.0.0.1:{port}", "127.0.0.1:1", echo_server.address)
        try:
            first = wait_for(lambda: _tcp(port), 20, "systemd-socket-activate to listen")
            first.close()  # the first connection starts websockify
            assert proc.wait(timeout(20)) == 2
            assert re.search(r"source address 127\.0\.0\.1:1 is not among the sockets systemd passed: "
                             rf"127\.0\.0\.1:{port}", proc.stderr.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _tcp(port: int):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    except OSError:
        return None


def _connect(port: int):
    try:
        return open_websocket(port)
    except (OSError, AssertionError):
        return None


# -- the journal ----------------------------------------------------------------------

def test_journal_lines_carry_priorities_and_no_timestamps(echo_server, tmp_path):
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        st = os.fstat(stderr.fileno())
        proc = subprocess.Popen([sys.executable, "-m", "websockify", "127.0.0.1:0", "127.0.0.1:1"],
                                stderr=stderr, env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    try:
        match = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", err.read_text()), 20, "listening")
        sock = open_websocket(int(match.group(1)))  # the target refuses: a warning
        sock.close()
        wait_for(lambda: "<4>" in err.read_text(), 10, "the warning")
    finally:
        proc.terminate()
        proc.wait(timeout(10))
    lines = err.read_text().splitlines()
    assert lines and all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert lines[0].startswith("<6>listening on")  # no timestamp: journald has its own
    assert any(line.startswith("<4>") and "target unreachable" in line for line in lines)


# -- the example units ------------------------------------------------------------------

def test_example_units_pass_systemd_analyze_verify(tmp_path):
    analyze = need("systemd-analyze")
    units = sorted((pathlib.Path(ROOT) / "scripts" / "systemd").iterdir())
    assert {u.name for u in units} >= {"websockify-vnc.service", "websockify.socket", "websockify.service",
                                       "websockify-proxy.service"}
    xvnc = shutil.which("Xvnc") or "/usr/bin/Xvnc"
    for unit in units:
        # verify wants the programs to exist: point them at this checkout's.
        text = unit.read_text().replace("/usr/local/bin/websockify", VENV_WEBSOCKIFY)
        (tmp_path / unit.name).write_text(text.replace(" -- Xvnc ", f" -- {xvnc} "))
    result = subprocess.run([analyze, "verify", *[u.name for u in units]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=timeout(60))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_no_ready_for_a_wrapped_program_that_never_listens(tmp_path):
    notify = NotifySocket(str(tmp_path / "notify"))
    with reserved_port() as port:
        proxy = start_proxy(str(port), "--", "sleep", "30", env={"NOTIFY_SOCKET": notify.path})
    try:
        proxy.proc.send_signal(signal.SIGTERM)
        messages = notify.until("STOPPING")
        assert not any("READY" in m for m in messages), messages
        proxy.proc.wait(timeout(20))
    finally:
        proxy.stop()
        notify.close()
