"""Every command-line form, and every bad-argument error: one line, exit code 2."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest
from helpers import TcpServer, assert_one_line_error, echo_handler, running_proxy, timeout, ws_connect


def websockify(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "websockify", *args], capture_output=True,
                          text=True, timeout=timeout(30), cwd=cwd)


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
    for section in ("Listening:", "Target:", "TLS:", "Limits:", "Logging and recording:"):
        assert f"\n{section}\n" in result.stdout
    assert "Examples:" in result.stdout


def test_help_loads_no_event_loop():
    """--help stays fast: asyncio (and the server under it) is imported only to run."""
    code = ("import runpy, sys\n"
            "sys.argv = ['websockify', '--help']\n"
            "try:\n    runpy.run_module('websockify', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "print('asyncio' in sys.modules, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout(30))
    assert result.stderr.strip() == "False", result.stderr


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
    (["localhost:16510:16501"], "(too many colons), and no target is given"),
    (["6080", "localhost:16510:16501"], "has too many colons for TARGET_ADDR:TARGET_PORT"),
    (["cafe:6080:5900"], "(too many colons), and no target is given"),  # hex letters, yet a name
    (["6080", "db:1:2"], "has too many colons for TARGET_ADDR:TARGET_PORT"),
    (["6080", "a:1", "--", "true"], "too many arguments"),
])
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    assert_one_line_error(websockify(*args), message)


@pytest.mark.parametrize("args", [[], ["--bogus", "6080", "a:1"], ["6080"]])
def test_usage_errors_point_to_help(args):
    result = websockify(*args)
    assert_one_line_error(result, "")
    assert result.stderr.rstrip("\n").endswith(" Try 'websockify --help'."), result.stderr
    assert ".." not in result.stderr and "?." not in result.stderr


@pytest.mark.parametrize("option", ["--ssl-only", "--verify-client"])
def test_a_missing_default_certificate_says_why_it_was_looked_for(tmp_path, option):
    result = websockify(option, "6080", "a:1", cwd=tmp_path)
    assert_one_line_error(result, f"{option} needs a certificate: no --cert given, and the default, self.pem "
                                  f"in the working directory ({tmp_path / 'self.pem'}), does not exist")
    assert "--help" not in result.stderr  # the arguments were fine: the file is missing


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


def busy_port(host: str, family: int = socket.AF_INET) -> socket.socket:
    busy = socket.socket(family)
    busy.bind((host, 0))
    busy.listen(1)
    return busy


def test_port_in_use_names_the_address_tried():
    """A bare port is tried as 0.0.0.0:PORT: the message shows that, not ':PORT'."""
    with busy_port("0.0.0.0") as busy:
        port = busy.getsockname()[1]
        assert_one_line_error(websockify(f":{port}", "127.0.0.1:1"),
                              f"cannot listen on 0.0.0.0:{port}: Address already in use", code=1)
        assert_one_line_error(websockify(str(port), "127.0.0.1:1"), f"cannot listen on 0.0.0.0:{port}:", code=1)
    with busy_port("127.0.0.1") as busy:
        port = busy.getsockname()[1]
        assert_one_line_error(websockify(f"localhost:{port}", "127.0.0.1:1"),
                              f"cannot listen on 127.0.0.1:{port} (localhost): Address already in use", code=1)


def test_port_in_use_with_prefer_ipv6_names_the_dual_stack_address():
    try:
        busy = busy_port("::", socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 here")
    with busy:
        port = busy.getsockname()[1]
        assert_one_line_error(websockify("-6", str(port), "127.0.0.1:1"),
                              f"cannot listen on [::]:{port}: Address already in use", code=1)


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
