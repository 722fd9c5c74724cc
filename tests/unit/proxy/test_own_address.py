"""Which connected peers are our own listeners (real sockets, nothing sent)."""
from __future__ import annotations

import socket

from websockify.proxy.own_address import OwnListeners


def listening(host: str, family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family)
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_a_listener_on_one_address_is_reached_only_there():
    sock = listening("127.0.0.1")
    with sock:
        port = sock.getsockname()[1]
        own = OwnListeners([sock])
        assert own.reached(("127.0.0.1", port), socket.AF_INET)
        assert own.reached(("::ffff:127.0.0.1", port, 0, 0), socket.AF_INET6)
        assert not own.reached(("127.0.0.2", port), socket.AF_INET)
        assert not own.reached(("127.0.0.1", port + 1), socket.AF_INET)


def test_a_wildcard_listener_is_reached_on_every_local_address():
    sock = listening("0.0.0.0")
    with sock:
        port = sock.getsockname()[1]
        own = OwnListeners([sock])
        assert own.reached(("127.0.0.5", port), socket.AF_INET)
        assert not own.reached(("192.0.2.7", port), socket.AF_INET)  # TEST-NET-1: never a local address


def test_unix_listeners_by_path(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    path = str(tmp_path / "s")
    sock.bind(path)
    with sock:
        own = OwnListeners([sock])
        assert own
        assert own.reached(path, socket.AF_UNIX)
        assert not own.reached(str(tmp_path / "other"), socket.AF_UNIX)
        assert not own.reached("", socket.AF_UNIX)


def test_no_listeners_reach_nothing():
    own = OwnListeners([])
    assert not own
    assert not own.reached(("127.0.0.1", 80), socket.AF_INET)
