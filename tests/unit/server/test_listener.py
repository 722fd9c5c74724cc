"""Listening sockets and our own accept loop, on real loopback and Unix sockets."""
from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from typing import Any, Callable

import pytest
from fakes import run

from websockify.addresses import TcpAddress
from websockify.errors import ConfigError, StartupError
from websockify.server import listener as listener_module
from websockify.server.listener import (
    Listener,
    ListeningSocket,
    _listen_addresses,
    adopt_listener,
    open_listener,
    open_unix_listener,
)

# -- TCP ---------------------------------------------------------------------------------

def test_a_tcp_listener_on_port_0_says_its_port():
    sock = open_listener(TcpAddress("127.0.0.1", 0), prefer_ipv6=False, backlog=8)
    listening = ListeningSocket(sock)
    try:
        assert not sock.getblocking()
        port = listening.port
        assert port and str(listening) == f"127.0.0.1:{port}"
    finally:
        listening.close()
    assert sock.fileno() == -1


def test_an_empty_host_listens_on_every_ipv4_address_unless_ipv6_is_preferred():
    assert _listen_addresses(TcpAddress("", 6080), prefer_ipv6=False)[0][4] == ("0.0.0.0", 6080)
    if socket.has_ipv6:
        assert _listen_addresses(TcpAddress("", 6080), prefer_ipv6=True)[0][4][:2] == ("::", 6080)


def test_a_name_that_does_not_resolve_is_a_startup_error():
    with pytest.raises(StartupError, match="cannot resolve source address 'no-such-host.invalid'"):
        _listen_addresses(TcpAddress("no-such-host.invalid", 6080), prefer_ipv6=False)


def test_a_port_in_use_names_the_address_bind_was_given():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}: "):
            open_listener(TcpAddress("127.0.0.1", port), prefer_ipv6=False, backlog=8)
        with pytest.raises(StartupError, match=rf"cannot listen on 127.0.0.1:{port} \(localhost\)"):
            open_listener(TcpAddress("localhost", port), prefer_ipv6=False, backlog=8)
    finally:
        taken.close()


# -- Unix --------------------------------------------------------------------------------

def test_a_unix_listener_is_born_with_its_mode_and_removed_at_close(tmp_path):
    path = str(tmp_path / "ws.sock")
    listening = open_unix_listener(path, 0o600, backlog=8)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert listening.port is None and str(listening) == f"unix:{path}"
    listening.close()
    assert not os.path.exists(path)


def test_a_socket_file_that_is_no_longer_ours_is_left_alone(tmp_path):
    path = str(tmp_path / "ws.sock")
    listening = open_unix_listener(path, 0o600, backlog=8)
    os.unlink(path)
    other = open_unix_listener(path, 0o600, backlog=8)  # another process took the path
    try:
        listening.close()
        assert os.path.exists(path)
    finally:
        other.close()


def test_a_stale_socket_file_is_replaced(tmp_path):
    path = str(tmp_path / "ws.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens
    open_unix_listener(path, 0o600, backlog=8).close()


def test_a_live_socket_or_a_regular_file_is_never_removed(tmp_path):
    path = str(tmp_path / "ws.sock")
    live = open_unix_listener(path, 0o600, backlog=8)
    try:
        with pytest.raises(ConfigError, match="another process listens on it"):
            open_unix_listener(path, 0o600, backlog=8)
    finally:
        live.close()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(ConfigError, match="exists and is not a socket"):
        open_unix_listener(str(regular), 0o600, backlog=8)
    assert regular.read_text() == "keep me"


# -- inherited descriptors -----------------------------------------------------------------

def test_an_inherited_listening_socket_is_adopted():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    adopted = adopt_listener(sock.detach(), "LISTEN_FDS")
    try:
        assert adopted.port and not adopted.sock.getblocking()
    finally:
        adopted.close()


def test_an_inherited_descriptor_that_is_not_a_listening_socket_is_refused(tmp_path):
    unbound = socket.socket()
    try:
        with pytest.raises(StartupError, match="not a listening stream socket"):
            adopt_listener(unbound.fileno(), "LISTEN_FDS")
        assert unbound.fileno() >= 0  # left to its owner
    finally:
        unbound.close()
    with open(tmp_path / "file", "w") as file:
        with pytest.raises(StartupError, match="is not a socket"):
            adopt_listener(file.fileno(), "--inetd")


# -- the accept loop ---------------------------------------------------------------------------

def test_the_accept_loop_hands_over_each_connection_non_blocking():
    async def scenario() -> None:
        sock = open_listener(TcpAddress("127.0.0.1", 0), prefer_ipv6=False, backlog=8)
        accepted: asyncio.Queue[tuple[socket.socket, Any]] = asyncio.Queue()
        listener = Listener(sock, lambda conn, address: accepted.put_nowait((conn, address)))
        listener.start()
        clients = [socket.create_connection(sock.getsockname()) for _ in range(3)]
        try:
            for _ in clients:
                conn, address = await asyncio.wait_for(accepted.get(), 5)
                assert not conn.getblocking() and address[0] == "127.0.0.1"
                conn.close()
        finally:
            listener.close()
            for client in clients:
                client.close()
        assert sock.fileno() == -1
        listener.start()  # after close (an EMFILE pause ending late): nothing happens

    run(scenario)


class FakeLoop:
    def __init__(self) -> None:
        self.readers: dict[int, Callable[[], None]] = {}
        self.later: list[tuple[float, Callable[[], None]]] = []

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        del self.readers[fd]

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.later.append((delay, callback))


class FailingSocket:
    """accept() raises the errors given, one per call, then EAGAIN."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def fileno(self) -> int:
        return 42

    def accept(self) -> Any:
        self.calls += 1
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, os.strerror(code))
        raise BlockingIOError()


def accept_loop(sock: FailingSocket) -> tuple[Listener, FakeLoop]:
    async def make() -> Listener:
        return Listener(sock, lambda conn, address: None)  # type: ignore[arg-type]

    listener = run(make)
    loop = FakeLoop()
    listener._loop = loop  # type: ignore[assignment]
    listener.start()
    return listener, loop


def test_out_of_descriptors_the_accept_loop_pauses_instead_of_spinning():
    sock = FailingSocket(errno.EMFILE)
    listener, loop = accept_loop(sock)
    loop.readers[42]()
    assert sock.calls == 1 and 42 not in loop.readers
    (delay, resume), = loop.later
    assert delay == listener_module._EMFILE_PAUSE_S
    resume()
    assert 42 in loop.readers


def test_a_connection_gone_before_accept_is_skipped():
    sock = FailingSocket(errno.EPROTO, errno.ENETDOWN)
    _, loop = accept_loop(sock)
    loop.readers[42]()
    assert sock.calls == 3 and 42 in loop.readers and loop.later == []
