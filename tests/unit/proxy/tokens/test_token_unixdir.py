"""UnixDomainSocketDirectory with real sockets: found, refused, and never outside its directory."""
import socket
import time

import pytest
from helpers import timeout

from websockify.errors import ConfigError
from websockify.token_plugins import UnixDomainSocketDirectory


def listen(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(1)
    return sock


@pytest.fixture
def layout(tmp_path):
    """/socks (the source) and its sibling /socks2 with the same prefix, and sockets in both."""
    socks, sibling = tmp_path / "socks", tmp_path / "socks2"
    socks.mkdir()
    sibling.mkdir()
    (socks / "sub").mkdir()
    listeners = [listen(socks / "vnc1"), listen(socks / "sub" / "deep"), listen(sibling / "x"),
                 listen(tmp_path / "outside")]
    (socks / "plain").write_text("not a socket")
    (socks / "out").symlink_to(tmp_path / "outside")
    (socks / "sideways").symlink_to(sibling / "x")
    (socks / "alias").symlink_to(socks / "vnc1")
    (socks / "down").symlink_to(socks / "sub" / "deep")
    (socks / "dangling").symlink_to(socks / "gone")
    yield tmp_path, socks
    for sock in listeners:
        sock.close()


def test_a_socket_in_the_directory_is_a_target(layout):
    _, socks = layout
    plugin = UnixDomainSocketDirectory(str(socks))
    kind, path = plugin.lookup("vnc1")
    assert (kind, path) == ("unix_socket", str(socks / "vnc1"))
    with socket.socket(socket.AF_UNIX) as client:  # and it is the socket we bound
        client.settimeout(timeout(5))
        client.connect(path)


def test_nothing_outside_the_directory(layout):
    tmp_path, socks = layout
    plugin = UnixDomainSocketDirectory(str(socks))
    for token in ("../socks2/x", "../outside", "..", ".", "", str(tmp_path / "outside"), str(socks / "vnc1"),
                  "sub/deep", "vnc1/", "vnc1\0", "out", "sideways", "plain", "sub", "dangling", "missing",
                  "x" * 5000):
        assert plugin.lookup(token) is None, token


def test_links_that_stay_inside_are_followed(layout):
    _, socks = layout
    plugin = UnixDomainSocketDirectory(str(socks))
    assert plugin.lookup("alias") == ["unix_socket", str(socks / "vnc1")]
    assert plugin.lookup("down") == ["unix_socket", str(socks / "sub" / "deep")]


def test_the_source_may_be_a_link_and_must_be_a_directory(layout):
    tmp_path, socks = layout
    (tmp_path / "link").symlink_to(socks)
    plugin = UnixDomainSocketDirectory(str(tmp_path / "link"))
    assert plugin.lookup("vnc1") == ["unix_socket", str(socks / "vnc1")]
    assert plugin.lookup("../socks2/x") is None
    with pytest.raises(ConfigError, match="needs a directory"):
        UnixDomainSocketDirectory(str(socks / "plain"))
    with pytest.raises(ConfigError, match="needs --token-source"):
        UnixDomainSocketDirectory(None)


def test_a_lookup_costs_microseconds(layout):
    _, socks = layout
    plugin = UnixDomainSocketDirectory(str(socks))
    assert plugin.loop_safe
    rounds = 5000
    started = time.perf_counter()
    for _ in range(rounds):
        plugin.lookup("vnc1")
    per_lookup_us = (time.perf_counter() - started) / rounds * 1e6
    print(f"UnixDomainSocketDirectory lookup {per_lookup_us:.2f} us")
    assert per_lookup_us < 500, per_lookup_us  # measured ~5 us


def test_a_directory_that_does_not_exist_yet_is_waited_for(tmp_path):
    """As upstream: None while the directory is missing, with `not_ready` set (the server answers
    503, not 404); the directory is found once it appears, and missed again if it goes."""
    socks = tmp_path / "later"
    plugin = UnixDomainSocketDirectory(str(socks))
    assert plugin.lookup("vnc1") is None and "does not exist" in plugin.not_ready
    socks.mkdir()
    listener = listen(socks / "vnc1")
    try:
        assert plugin.lookup("vnc1") == ["unix_socket", str(socks / "vnc1")] and plugin.not_ready is None
        assert plugin.lookup("other") is None and plugin.not_ready is None  # an unknown token: 404
    finally:
        listener.close()
    (socks / "vnc1").unlink()
    socks.rmdir()
    assert plugin.lookup("vnc1") is None and "does not exist" in plugin.not_ready
