"""Where log lines go (file with logrotate, syslog in both formats) and what they never hold."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from helpers import ROOT, running_proxy, timeout, wait_for
from rawws import exchange, frame, open_websocket, read_frame, status_of, upgrade_request


def test_log_file_survives_logrotate(tmp_path, echo_server):
    log = tmp_path / "ws.log"
    with running_proxy("--log-file", str(log), "127.0.0.1:0", echo_server.address) as proxy:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} websockify\[\d+\] INFO listening on",
                        log.read_text())
        log.rename(tmp_path / "ws.log.1")  # what logrotate does (without copytruncate)
        exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(log.exists, 10, "a new log file")
        wait_for(lambda: "HTTP 426" in log.read_text(), 10, "the line in the new file")
    assert "HTTP 426" not in (tmp_path / "ws.log.1").read_text()


class SyslogServer:
    def __init__(self, kind: str, path: str = ""):
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(path)
            self.address = path
        self.sock.settimeout(timeout(20))

    def until(self, text: str) -> str:
        while True:
            line = self.sock.recv(65536).decode()
            if text in line:
                return line


@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_syslog_rfc5424(tmp_path, echo_server, kind):
    server = SyslogServer(kind, str(tmp_path / "log.sock"))
    with running_proxy("--syslog", server.address, "127.0.0.1:0", echo_server.address) as proxy:
        line = server.until("listening on")
        assert re.fullmatch(rf"<14>1 \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z \S+ websockify {proxy.proc.pid} - - "
                            rf"listening on 127\.0\.0\.1:{proxy.port}", line), line


def test_legacy_syslog(echo_server):
    server = SyslogServer("udp")
    with running_proxy("--syslog", server.address, "--legacy-syslog", "127.0.0.1:0", echo_server.address) as proxy:
        line = server.until("listening on")
        assert line == f"<14>websockify[{proxy.proc.pid}]: listening on 127.0.0.1:{proxy.port}"


def test_daemon_syslog_uses_the_daemon_facility_and_never_writes_into_clients(tmp_path, echo_server):
    server = SyslogServer("udp")
    log = tmp_path / "ws.log"
    result = subprocess.run([sys.executable, "-m", "websockify", "-D", "--syslog", server.address, "--log-file",
                             str(log), "--pid-file", str(tmp_path / "pid"), "127.0.0.1:0", echo_server.address],
                            capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 0, result.stderr
    pid = int((tmp_path / "pid").read_text())
    try:
        line = server.until("listening on")
        assert line.startswith("<30>1 ")  # facility daemon (3), severity info (6)
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
        for i in range(20):  # upstream wrote log lines into accepted sockets here
            ws = open_websocket(port)
            ws.sendall(frame(0x2, b"%d" % i))
            assert read_frame(ws) == (0x2, b"%d" % i)
            ws.close()
    finally:
        os.kill(pid, 15)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, "the daemon to exit")


def test_syslog_that_cannot_be_reached_is_one_line(tmp_path, echo_server):
    result = subprocess.run([sys.executable, "-m", "websockify", "--syslog", str(tmp_path / "nothing"),
                             "127.0.0.1:0", echo_server.address], capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 2
    assert result.stderr.startswith("websockify: error: --syslog: cannot reach") and result.stderr.count("\n") == 1


def test_traffic_lines_and_no_payloads_even_verbose(echo_server):
    with running_proxy("-v", "--traffic", "127.0.0.1:0", echo_server.address) as proxy:
        ws = open_websocket(proxy.port, path="/?token=SECRET-TOKEN")
        ws.sendall(frame(0x2, b"PAYLOAD-XYZ"))
        assert read_frame(ws) == (0x2, b"PAYLOAD-XYZ")
        ws.close()
        proxy.wait_log(r"client > target 11 bytes")
        proxy.wait_log(r"client < target 11 bytes")
        proxy.wait_log(r"up=11 down=11")
    assert "PAYLOAD-XYZ" not in proxy.log
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        ws = open_websocket(proxy.port)
        ws.sendall(frame(0x2, b"quiet"))
        assert read_frame(ws) == (0x2, b"quiet")
        ws.close()
        proxy.wait_log(r"up=5 down=5")
    assert "client > target" not in proxy.log


def test_key_password_never_logged(tmp_path, echo_server):
    from certs import make_all
    certs = make_all(tmp_path)
    with running_proxy("-v", "--cert", str(certs / "server.pem"), "--key", str(certs / "server.key"),
                       "--key-password", "hunter2-secret", "127.0.0.1:0", echo_server.address) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
        sock.sendall(upgrade_request())
        sock.close()
    assert "hunter2-secret" not in proxy.log


# -- escaping and bounds of every line, secrets in request targets (issue 17, item 10) ------

LINE_LIMIT = 2048  # websockify.service.logs.LINE_LIMIT: the longest line a record may have
PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}
C1_AND_SEPARATORS = ("\x9b", "\x85", "\u2028", "\x1b")


def test_an_auth_plugins_exception_carrying_a_header_is_escaped_and_bounded(tmp_path, echo_server):
    """The traceback path wrote a client's U+009B and U+0085 raw, in a 15 KB line."""
    log = tmp_path / "ws.log"
    header = "\x9b2J\x9b31m\x85" + "h" * 15000 + "\x9b0m"
    with running_proxy("--auth-plugin", "faulty_auth.Crashes", "--log-file", str(log), "127.0.0.1:0",
                       echo_server.address, env=PLUGINS) as proxy:
        reply = exchange(proxy.port, upgrade_request(extra=f"X-Boom: {header}\r\n"))
        assert status_of(reply) == 500
        proxy.wait_log(r"RuntimeError: plugin bug: \\x9b2J\\x9b31m\\x85hhh")
        wait_for(lambda: "RuntimeError: plugin bug" in log.read_text(), 10, "the traceback in the log file")
    for text in (proxy.log, log.read_bytes().decode("utf-8")):
        assert "Traceback (most recent call last):" in text
        assert not any(char in text for char in C1_AND_SEPARATORS)
        assert max(len(line) for line in text.split("\n")) <= LINE_LIMIT
        assert re.search(r"\.\.\. \[cut: 150\d\d characters\]", text)
        assert "\r" not in text


@pytest.fixture
def web_root(tmp_path):
    (tmp_path / "vnc.html").write_text("<html>noVNC</html>")
    return tmp_path


@pytest.mark.parametrize("target", [
    "/vnc.html?autoconnect=1&password=SECRETPW1",                       # noVNC's own parameter
    "/vnc.html?PASS%77ORD=SECRETPW1&host=h",                            # any case, any encoding of the key
    "/vnc.html?path=websockify%3Ftoken%3DtokeSECRETTK2",                # noVNC's path= carrying a token
    "/vnc.html?path=websockify%3Ftoken%3D%ZZSECRETTK2",                 # and an invalid escape in it
    "/vnc.html?path=websockify%253Fpassword%253DSECRETPW1",             # encoded twice
    "/vnc.html?token=abc%26SECRETTK2",                                  # %26 inside the token
])
def test_web_requests_never_log_a_password_or_a_whole_token(web_root, echo_server, target):
    log = web_root / "ws.log"
    with running_proxy("-v", "--web", str(web_root), "--log-file", str(log), "127.0.0.1:0",
                       echo_server.address) as proxy:
        reply = exchange(proxy.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status_of(reply) == 200
        line = proxy.wait_log(r"GET /vnc\.html\?\S* -> 200").group(0)
        assert "…" in line
        # A WebSocket to the same target is logged with its path at debug level.
        ws = open_websocket(proxy.port, path=target.replace("/vnc.html", "/websockify"))
        ws.sendall(frame(0x2, b"hi"))
        assert read_frame(ws) == (0x2, b"hi")
        ws.close()
        proxy.wait_log(r"WebSocket open, path /websockify\?\S*")
        wait_for(lambda: "WebSocket open" in log.read_text(), 10, "the line in the log file")
    for text in (proxy.log, log.read_text()):
        assert "SECRET" not in text
