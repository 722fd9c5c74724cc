import dataclasses

import pytest

from websockify.addresses import TcpAddress, UnixAddress, parse_listen, parse_target
from websockify.config import build_config
from websockify.errors import ConfigError


@pytest.mark.parametrize("text,expected", [
    ("6080", TcpAddress("", 6080)),
    ("0.0.0.0:6080", TcpAddress("0.0.0.0", 6080)),
    ("[::1]:6080", TcpAddress("::1", 6080)),
    ("[::]:6080", TcpAddress("::", 6080)),
    ("localhost:0", TcpAddress("localhost", 0)),
])
def test_listen_forms(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("localhost:5900", TcpAddress("localhost", 5900)),
    ("[fe80::1]:5901", TcpAddress("fe80::1", 5901)),
    ("10.0.0.1:1", TcpAddress("10.0.0.1", 1)),
])
def test_target_forms(text, expected):
    assert parse_target(text) == expected
    assert str(expected) == text  # printed as written, an IPv6 literal in brackets


@pytest.mark.parametrize("text", ["5900", "host:", "host:65536", ":1", "[::1]5900", "a b:1", "1.2.3.4.5:1", "::g:1"])
def test_bad_targets(text):
    with pytest.raises(ConfigError):
        parse_target(text)


def test_routes_are_exclusive_and_required():
    assert build_config(arguments=("1",), unix_target="/s").target == UnixAddress("/s")
    with pytest.raises(ConfigError, match="missing target"):
        build_config(arguments=("1",))
    with pytest.raises(ConfigError, match="too many arguments: a:1"):
        build_config(arguments=("1", "a:1"), wrap_command=("x",))
    with pytest.raises(ConfigError, match="conflicting targets: --unix-target and --token-plugin"):
        build_config(arguments=("1",), unix_target="/s", token_plugin="T")


def test_config_is_frozen():
    config = build_config(arguments=("1", "a:1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listen = None  # type: ignore[misc]


@pytest.mark.parametrize("text,expected", [
    ("127.1:5900", TcpAddress("127.0.0.1", 5900)),   # the short forms getaddrinfo takes
    ("0:5900", TcpAddress("0.0.0.0", 5900)),
    ("::1:5900", TcpAddress("::1", 5900)),           # split at the last colon, as upstream does
    ("fe80::1:22", TcpAddress("fe80::1", 22)),
])
def test_upstream_target_forms(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text,expected", [
    (":6080", TcpAddress("", 6080)),                  # every address
    ("::1:6080", TcpAddress("::1", 6080)),
])
def test_upstream_listen_forms(text, expected):
    assert parse_listen(text) == expected
