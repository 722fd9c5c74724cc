"""Daemon mode, pid files, Unix listening sockets and --inetd: real processes, nothing left behind."""
from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import uuid

import pytest
from helpers import ROOT, assert_one_line_error, processes_with, running_proxy, timeout, wait_for
from rawws import exchange, frame, open_unix_websocket, open_websocket, read_frame, upgrade_request

WEBSOCKIFY = [sys.executable, "-m", "websockify"]


@pytest.fixture
def marker():
    value = f"WEBSOCKIFY_TEST_RUN={uuid.uuid4().hex}"
    yield value
    for pid in processes_with(value):  # never leave a daemon behind, even when a test fails
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def start_daemon(marker: str, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    name, _, value = marker.partition("=")
    return subprocess.run([*WEBSOCKIFY, "-D", *args], capture_output=True, text=True, timeout=timeout(30),
                          cwd=cwd, env={**os.environ, name: value})


def port_from_log(path, seconds: float = 10) -> int:
    match = wait_for(lambda: os.path.exists(path) and re.search(r"listening on 127\.0\.0\.1:(\d+)", open(path).read()),
                     seconds, "the daemon's listening line")
    return int(match.group(1))


def test_daemon_detaches_once_listening_and_relative_paths_keep_their_meaning(marker, tmp_path, echo_server):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("daemon page")
    result = start_daemon(marker, "--pid-file", "ws.pid", "--log-file", "ws.log", "--web", "web",
                          "--record", "rec", "127.0.0.1:0", echo_server.address, cwd=str(tmp_path))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    # Exit 0 means listening: the pid file and the port are there already.
    pid = int((tmp_path / "ws.pid").read_text())
    port = port_from_log(tmp_path / "ws.log", seconds=1)
    assert processes_with(marker) == [pid]  # the command line and the intermediate child are gone
    status = open(f"/proc/{pid}/status").read()
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert int(re.search(r"^Umask:\s+(\d+)", status, re.M).group(1), 8) == 0o022
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
    sid = os.getsid(pid)
    assert sid != os.getsid(0) and sid != pid  # its own session, not its leader (no terminal, ever)
    assert exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").endswith(b"\r\n\r\ndaemon page")
    ws = open_websocket(port)
    ws.sendall(frame(0x2, b"recorded"))
    assert read_frame(ws) == (0x2, b"recorded")
    ws.close()
    recording = wait_for(lambda: [p for p in tmp_path.iterdir() if p.name.startswith("rec.")], 10, "a recording")
    assert stat.S_IMODE(recording[0].stat().st_mode) == 0o600
    os.kill(pid, 15)
    wait_for(lambda: not processes_with(marker), 10, "the daemon to exit")
    assert not (tmp_path / "ws.pid").exists()
    log = (tmp_path / "ws.log").read_text()
    assert "received SIGTERM" in log


def test_daemon_start_failures_reach_the_command_line(marker, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    result = start_daemon(marker, f"127.0.0.1:{busy.getsockname()[1]}", "127.0.0.1:9")
    assert_one_line_error(result, "cannot listen on 127.0.0.1", code=1)
    result = start_daemon(marker, "--cert", "missing.pem", "127.0.0.1:0", "127.0.0.1:9", cwd=str(tmp_path))
    assert_one_line_error(result, f"cannot read certificate file {tmp_path}/missing.pem")
    busy.close()
    wait_for(lambda: not processes_with(marker), 10, "the failed daemons to be gone")


def test_pid_file_of_a_live_instance_is_refused_and_a_stale_one_replaced(marker, tmp_path, echo_server):
    pid_file = tmp_path / "ws.pid"
    pid_file.write_text("999999\n")  # no such process: stale
    with running_proxy("--pid-file", str(pid_file), "127.0.0.1:0", echo_server.address) as first:
        assert int(pid_file.read_text()) == first.proc.pid
        result = subprocess.run([*WEBSOCKIFY, "--pid-file", str(pid_file), "127.0.0.1:0", echo_server.address],
                                capture_output=True, text=True, timeout=timeout(30))
        assert_one_line_error(result, f"websockify is already running as pid {first.proc.pid}", code=1)
        assert int(pid_file.read_text()) == first.proc.pid
    assert not pid_file.exists()


def test_unix_listen_serves_everything_and_cleans_up(tmp_path, echo_server):
    path = tmp_path / "ws.sock"
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("over unix")
    with running_proxy("--unix-listen", str(path), "--web", str(tmp_path / "web"), echo_server.address,
                       wait_listening=False) as proxy:
        proxy.wait_log(f"listening on unix:{path}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout(10))
            sock.connect(str(path))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            assert reply.endswith(b"\r\n\r\nover unix")
        with open_unix_websocket(str(path)) as sock:
            sock.sendall(frame(0x2, b"unix"))
            assert read_frame(sock) == (0x2, b"unix")
    assert not path.exists()


def test_unix_listen_mode_and_stale_socket(tmp_path, echo_server):
    path = tmp_path / "ws.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # left behind by a dead process: nobody listens
    with running_proxy("--unix-listen", str(path), "--unix-listen-mode", "0660", echo_server.address,
                       wait_listening=False) as proxy:
        proxy.wait_log("listening on unix:")
        assert stat.S_IMODE(path.stat().st_mode) == 0o660


@pytest.mark.parametrize("kind", ["file", "live socket"])
def test_unix_listen_never_removes_what_is_in_use(tmp_path, echo_server, kind):
    path = tmp_path / "taken"
    holder = None
    if kind == "file":
        path.write_text("precious")
        message = "the path exists and is not a socket; not removing it"
    else:
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(str(path))
        holder.listen()
        message = "another process listens on it"
    result = subprocess.run([*WEBSOCKIFY, "--unix-listen", str(path), echo_server.address],
                            capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, message)
    assert path.exists()
    if holder is not None:
        holder.close()
    else:
        assert path.read_text() == "precious"


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_inetd_takes_the_listening_socket_on_stdin(echo_server, family, host):
    listener = socket.socket(family)
    listener.bind((host, 0))
    listener.listen()
    port = listener.getsockname()[1]
    proc = subprocess.Popen([*WEBSOCKIFY, "--inetd", echo_server.address], stdin=listener.fileno(),
                            stderr=subprocess.PIPE, text=True)
    listener.close()
    try:
        sock = wait_for(lambda: _try_connect(host, port), 20, "websockify on the inherited socket")
        sock.sendall(frame(0x2, b"inetd"))
        assert read_frame(sock) == (0x2, b"inetd")
        sock.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout(10)) == 0


def _try_connect(host: str, port: int):
    try:
        return open_websocket_at(host, port)
    except (OSError, AssertionError):
        return None


def open_websocket_at(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout(10))
    sock.sendall(upgrade_request())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise OSError("closed")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.mark.parametrize("args,message", [
    (("--unix-listen", "/tmp/x.sock", "--inetd", "h:1"), "--unix-listen and --inetd are two listening sockets"),
    (("--unix-listen", "/tmp/x.sock", "6080", "h:1"), "a source address cannot be given with --unix-listen"),
    (("--unix-listen-mode", "999", "--unix-listen", "/tmp/x.sock", "h:1"), "is not an octal mode"),
    (("--legacy-syslog", "6080", "h:1"), "--legacy-syslog requires --syslog"),
    (("--unix-listen", "/tmp/x.sock", "--", "true"), "needs the port it binds"),
])
def test_service_option_errors(args, message):
    result = subprocess.run([*WEBSOCKIFY, *args], capture_output=True, text=True, timeout=timeout(30), cwd=ROOT)
    assert_one_line_error(result, message)
