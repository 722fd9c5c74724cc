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


@pytest.mark.parametrize("text", ["localhost:6080:5900", "a.example:1:2"])
def test_a_colon_too_many_is_named(text):
    """Not 'is not an IPv6 address': nothing in `localhost:6080` looks like one."""
    with pytest.raises(ConfigError, match="too many colons") as target_error:
        parse_target(text)
    assert "IPv6 address in brackets" in str(target_error.value)
    with pytest.raises(ConfigError, match="too many colons"):
        parse_listen(text)


def test_source_and_target_run_together_says_the_target_is_missing():
    """`websockify localhost:16510:16501`: one argument where two were meant."""
    with pytest.raises(ConfigError) as error:
        build_config(arguments=("localhost:16510:16501",))
    message = str(error.value)
    assert "'localhost:16510:16501'" in message and "too many colons" in message
    assert "no target is given" in message and "two arguments" in message
    with pytest.raises(ConfigError, match="source address: .* too many colons") as error:
        build_config(arguments=("localhost:16510:16501",), unix_target="/s")  # a target: only the colons
    assert "no target" not in str(error.value)


def test_an_address_that_looks_like_ipv6_is_still_called_one():
    with pytest.raises(ConfigError, match="'fe80::zz' is not an IPv6 address"):
        parse_listen("fe80::zz:6080")


def test_the_default_certificate_remembers_why_it_was_chosen():
    assert build_config(arguments=("1", "a:1"), ssl_only=True).tls.default_cert_for == "--ssl-only"
    assert build_config(arguments=("1", "a:1"), verify_client=True).tls.default_cert_for == "--verify-client"
    given = build_config(arguments=("1", "a:1"), ssl_only=True, cert="c.pem").tls
    assert given.cert == "c.pem" and given.default_cert_for is None
