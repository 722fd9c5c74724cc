"""Attacks on token routing: guessing tokens, and tokens that lead back to websockify itself."""
from __future__ import annotations

import os
import re
import socket
import time

import pytest
from helpers import ROOT, TcpServer, echo_handler, reserved_port, running_proxy, timeout
from rawws import frame, read_frame, read_head, read_until_close, status_of, upgrade_request

PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}


def ask(port: int, path: str, source: str = "127.0.0.1") -> tuple[int, bytes, socket.socket]:
    """Status and head of an upgrade request from `source`; the socket stays open (101: a session)."""
    sock = socket.socket()
    sock.settimeout(timeout(10))
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request(path))
    head = read_head(sock)
    return status_of(head), head, sock


def status(port: int, path: str, source: str = "127.0.0.1") -> int:
    code, _, sock = ask(port, path, source)
    sock.close()
    return code


# -- guessing --------------------------------------------------------------------

def test_unknown_tokens_are_throttled_per_address():
    """10 unknown tokens answered 404 at once, then 429 with Retry-After without asking the plugin;
    another address keeps its own allowance, and the log does not grow with the guesses."""
    echo = TcpServer(echo_handler)
    try:
        with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"good={echo.address}",
                           "127.0.0.1:0", env=PLUGINS) as proxy:
            started = time.monotonic()
            answers = [status(proxy.port, f"/?token=guess{n}") for n in range(60)]
            elapsed = time.monotonic() - started
            assert answers[:10] == [404] * 10
            # The bucket of 10 refills at one a second: while the guesses ran, at most that many more 404s.
            assert set(answers[10:]) <= {404, 429} and answers[10:].count(404) <= int(elapsed) + 1, (elapsed, answers)
            code, head, sock = ask(proxy.port, "/?token=good")
            sock.close()
            assert code == 429 and re.search(rb"\r\nRetry-After: [1-9]\d*\r\n", head), head
            # Another address: its own bucket, the same valid token works.
            code, _, sock = ask(proxy.port, "/?token=good", source="127.0.0.2")
            with sock:
                assert code == 101
                sock.sendall(frame(0x2, b"hi"))
                assert read_frame(sock)[1] == b"hi"
            proxy.wait_log(r"token requests refused for \d+ s: too many unknown tokens")
            refusals = [line for line in proxy.lines if "429" in line or "too many unknown tokens" in line]
            assert len(refusals) <= 4, refusals  # a few lines, then a count every 10 s
            assert sum("not found" in line for line in proxy.lines) == answers.count(404)
    finally:
        echo.close()


def test_the_allowance_comes_back_with_time():
    echo = TcpServer(echo_handler)
    try:
        with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"good={echo.address}",
                           "127.0.0.1:0", env=PLUGINS) as proxy:
            while status(proxy.port, "/?token=nope") == 404:
                pass
            # One guess a second drains: within a few seconds the valid token is let in again.
            end = time.monotonic() + timeout(8)
            while True:
                code, _, sock = ask(proxy.port, "/?token=good")
                sock.close()
                if code == 101 or time.monotonic() > end:
                    break
                time.sleep(0.2)
            assert code == 101
    finally:
        echo.close()


# -- a token that names our own listener ------------------------------------------

def one_session_refused(proxy, port: int, path: str) -> None:
    code, _, sock = ask(port, path)
    with sock:
        assert code == 101
        assert read_until_close(sock) == 1011
    assert_one_refused_session(proxy)


def assert_one_refused_session(proxy) -> None:
    """One session, refused at once: not 400 nested ones."""
    proxy.wait_log(r"target=\S+ up=0 down=0 .*close=1011 \(Target is this proxy\)")
    assert sum("own listening address: refused, it would proxy to itself" in line
               for line in proxy.lines if "target unreachable" in line) == 1, proxy.log
    assert sum(" target=" in line for line in proxy.lines) == 1, proxy.log


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.9"])
def test_a_token_naming_our_own_port_is_refused(host):
    with reserved_port() as port:
        source = f"self={host}:{port}"
        listen = f"0.0.0.0:{port}" if host == "127.0.0.9" else f"127.0.0.1:{port}"
        with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", source, listen,
                           env=PLUGINS) as proxy:
            one_session_refused(proxy, port, "/?token=self")


def test_a_target_on_the_command_line_naming_our_own_port_is_refused():
    with reserved_port() as port:
        with running_proxy(f"127.0.0.1:{port}", f"localhost:{port}") as proxy:
            one_session_refused(proxy, port, "/")


def test_a_token_naming_our_own_unix_socket_is_refused(tmp_path):
    path = str(tmp_path / "ws.sock")
    with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source", f"self=unix_socket:{path}",
                       "--unix-listen", path, env=PLUGINS, wait_listening=False) as proxy:
        proxy.wait_log("listening on")
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout(10))
        sock.connect(path)
        with sock:
            sock.sendall(upgrade_request("/?token=self"))
            assert status_of(read_head(sock)) == 101
            assert read_until_close(sock) == 1011
        assert_one_refused_session(proxy)


def test_another_port_on_this_host_is_still_a_target():
    """The check names our listeners only: a local service on another port is served."""
    echo = TcpServer(echo_handler)
    try:
        with running_proxy("--token-plugin", "routing_plugins.Table", "--token-source",
                           f"local=127.0.0.1:{echo.port}", "0.0.0.0:0", env=PLUGINS) as proxy:
            code, _, sock = ask(proxy.port, "/?token=local")
            with sock:
                assert code == 101
                sock.sendall(frame(0x2, b"still here"))
                assert read_frame(sock)[1] == b"still here"
    finally:
        echo.close()



def test_workers_refuse_their_own_listener_too():
    with reserved_port() as port:
        with running_proxy("--workers", "2", "--token-plugin", "routing_plugins.Table", "--token-source",
                           f"self=127.0.0.1:{port}", f"127.0.0.1:{port}", env=PLUGINS) as proxy:
            code, _, sock = ask(port, "/?token=self")
            with sock:
                assert code == 101
                assert read_until_close(sock) == 1011
            proxy.wait_log(r"own listening address: refused, it would proxy to itself")
            proxy.wait_log(r"close=1011 \(Target is this proxy\)")
