"""Every command-line form, and every bad-argument error: one line, exit code 2."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from helpers import TcpServer, assert_one_line_error, echo_handler, running_proxy, timeout, ws_connect


def websockify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "websockify", *args], capture_output=True,
                          text=True, timeout=timeout(30))


def echo_through(url: str) -> None:
    async def scenario():
        async with asyncio.timeout(timeout(20)):
            async with ws_connect(url) as ws:
                await ws.send(b"ping")
                assert await ws.recv() == b"ping"
    asyncio.run(scenario())


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    result = websockify(flag)
    assert result.returncode == 0
    assert "[SOURCE_ADDR:]SOURCE_PORT" in result.stdout
    for option in ("--web", "--unix-target", "--prefer-ipv6", "--verbose", "--wrap-mode", "--token-plugin"):
        assert option in result.stdout


def test_console_script_is_installed():
    bindir = __import__("os").path.dirname(sys.executable)
    result = subprocess.run([f"{bindir}/websockify", "--version"], capture_output=True, text=True,
                            timeout=timeout(30))
    assert result.returncode == 0 and "websockify" in result.stdout


@pytest.mark.parametrize("args,message", [
    ([], "missing source address"),
    (["6080"], "missing target"),
    (["abc", "localhost:5900"], "port 'abc' is not a number"),
    (["70000", "localhost:5900"], "out of range"),
    (["6080", "localhost:0"], "out of range"),
    (["6080", "localhost"], "must be HOST:PORT"),
    (["6080", ":5900"], "must be HOST:PORT"),
    (["6080", "localhost:x"], "is not a number"),
    (["999.1.1.1:6080", "localhost:5900"], "not a valid IPv4 address"),
    (["6080", "bad_host!:5900"], "not a valid host name"),
    (["fe80::zz:6080", "localhost:5900"], "is not an IPv6 address"),
    (["[::1:6080", "localhost:5900"], "has no port"),
    (["[nothex]:6080", "localhost:5900"], "is not an IPv6 address"),
    (["6080", "a:1", "b:2"], "too many arguments"),
    (["--bogus", "6080", "a:1"], "No such option"),
    (["6080", "a:1", "--unix-target", "/tmp/x"], "too many arguments"),
    (["6080", "--token-source", "x", "a:1"], "--token-source requires --token-plugin"),
    (["--web", "/nonexistent/dir", "6080", "a:1"], "does not exist"),
    (["--max-message-size", "10", "6080", "a:1"], "--max-message-size"),
    (["--wrap-mode", "bad", "6080", "--", "true"], "--wrap-mode"),
    (["6080", "--"], "must be followed by the command"),
    (["0", "--", "true"], "fixed source port"),
    (["--web-auth", "6080", "a:1"], "--web-auth requires --auth-plugin and --web"),
    (["--auth-source", "x", "6080", "a:1"], "--auth-source requires --auth-plugin"),
    (["--ssl-version", "sslv3", "6080", "a:1"], "--ssl-version"),
    (["--ssl-target", "--unix-target", "/x", "6080"], "--ssl-target cannot be used with --unix-target"),
    (["--handshake-timeout", "0", "6080", "a:1"], "--handshake-timeout"),
    (["--grace-period", "-1", "6080", "--", "true"], "--grace-period"),
    (["--ssl-only", "6080", "a:1"], "self.pem"),
    (["6080", "a:1", "--", "true"], "too many arguments"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    assert_one_line_error(websockify(*args), message)


def test_web_must_be_a_directory(tmp_path):
    # (Unreadable directories cannot be made here: the tests run as root.)
    page = tmp_path / "index.html"
    page.write_text("x")
    assert_one_line_error(websockify("--web", str(page), "6080", "a:1"), "is a file")


def test_port_in_use_is_one_line_and_exit_1():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = websockify(f"127.0.0.1:{port}", "127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("websockify: error: cannot listen on")
    assert "Traceback" not in result.stderr


def test_options_after_positionals_and_host_name_target(echo_server):
    with running_proxy("127.0.0.1:0", f"localhost:{echo_server.port}", "-v") as proxy:
        echo_through(proxy.url)
        proxy.wait_log("DEBUG")


def test_bare_port_listens_on_ipv4_any(echo_server):
    with running_proxy("0", echo_server.address) as proxy:
        assert "listening on 0.0.0.0:" in proxy.log
        echo_through(f"ws://127.0.0.1:{proxy.port}/")


def test_ipv6_listen_literal(echo_server):
    with running_proxy("[::1]:0", echo_server.address) as proxy:
        assert "listening on [::1]:" in proxy.log
        echo_through(f"ws://[::1]:{proxy.port}/")


def test_prefer_ipv6_listens_dual_stack(echo_server):
    with running_proxy("-6", "0", echo_server.address) as proxy:
        assert "listening on [::]:" in proxy.log
        echo_through(f"ws://[::1]:{proxy.port}/")
        echo_through(f"ws://127.0.0.1:{proxy.port}/")


def test_ipv6_target_literal():
    server = TcpServer(echo_handler, host="::1", family=socket.AF_INET6)
    try:
        with running_proxy("127.0.0.1:0", f"[::1]:{server.port}") as proxy:
            echo_through(proxy.url)
    finally:
        server.close()
