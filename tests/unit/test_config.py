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


# -- each settings group's checks, with the message the command line prints -----

BASE = {"arguments": ("1", "a:1")}


@pytest.mark.parametrize("options, message", [
    # tokens and authentication
    ({"target_config": "/t", "token_plugin": "T"}, "--target-config is a token file: give it or --token-plugin, not both"),
    ({"token_source": "s"}, "--token-source requires --token-plugin"),
    ({"host_token": True}, "--host-token requires --token-plugin"),
    ({"auth_source": "s"}, "--auth-source requires --auth-plugin"),
    ({"web_auth": True, "auth_plugin": "A"}, "--web-auth requires --auth-plugin and --web"),
    # listening
    ({"unix_listen": "/s", "inetd": True}, "--unix-listen and --inetd are two listening sockets: give one"),
    ({"unix_listen": ""}, "--unix-listen: empty path"),
    ({"unix_listen_mode": "999"}, "--unix-listen-mode: '999' is not an octal mode like 0600"),
    # source and target
    ({"arguments": ()}, "missing source address: give [SOURCE_ADDR:]SOURCE_PORT"),
    ({"arguments": ("1", "a:1", "b")}, "too many arguments: b"),
    ({"arguments": ("1", "a:1"), "inetd": True}, "a source address cannot be given with --inetd"),
    ({"arguments": ("1",), "unix_target": "/s", "wrap_command": ("x",)},
     "conflicting targets: --unix-target and a wrapped command (-- COMMAND)"),
    ({"arguments": ("1",), "unix_target": ""}, "--unix-target: empty path"),
    ({"ssl_target": True, "arguments": ("1",), "wrap_command": ("x",)},
     "--ssl-target needs a TCP target or a token plugin"),
    ({"ssl_target": True, "arguments": ("1",), "unix_target": "/s"}, "--ssl-target cannot be used with --unix-target"),
    # wrapping
    ({"arguments": (), "unix_listen": "/s", "wrap_command": ("x",)},
     "a wrapped command with --unix-listen needs the port it binds: give SOURCE_PORT"),
    ({"arguments": ("0",), "wrap_command": ("x",)}, "a wrapped command needs a fixed source port, not 0"),
    ({"wrap_mode": "twice"}, "--wrap-mode: 'twice' is not one of exit, ignore, respawn"),
    ({"grace_period_s": -1}, "--grace-period: must be zero or more"),
    # limits
    ({"handshake_timeout_s": 0}, "--handshake-timeout: must be positive"),
    ({"max_message_bytes": 124}, "--max-message-size: must be at least 125 bytes"),
    ({"max_connections": 0}, "--max-connections: must be positive"),
    ({"max_connections_per_ip": -1}, "--max-connections-per-ip: must be zero or more"),
    ({"max_header_bytes": 1023}, "--max-header-bytes: must be at least 1024"),
    ({"max_headers": 0}, "--max-headers: must be positive"),
    # lifetime, workers, logging
    ({"heartbeat_s": -1}, "--heartbeat: must be zero or more"),
    ({"idle_timeout_s": -1}, "--idle-timeout: must be zero or more"),
    ({"timeout_s": -1}, "--timeout: must be zero or more"),
    ({"workers": "257"}, "--workers: '257' is not a number of processes (1-256) or auto"),
    ({"legacy_syslog": True}, "--legacy-syslog requires --syslog"),
    # TLS and web
    ({"key": "k.pem"}, "--key requires --cert"),
    ({"ssl_version": "sslv3"}, "--ssl-version: 'sslv3' is not one of default, tlsv1_1, tlsv1_2, tlsv1_3"),
    ({"allowed_origins": " "}, "--allowed-origins: give at least one origin, or * for any"),
])
def test_each_group_names_what_is_wrong(options, message):
    with pytest.raises(ConfigError) as error:
        build_config(**{**BASE, **options})
    assert str(error.value) == message


def test_groups_are_checked_in_order_so_the_same_mistake_is_named_first():
    """With several mistakes, the command line names the first group's: tokens before
    listening before targets, wrapping, limits, lifetime, workers, logging, TLS, auth."""
    mistakes = {"host_token": True, "unix_listen": "", "wrap_mode": "twice", "max_headers": 0,
                "timeout_s": -1, "workers": "x", "legacy_syslog": True, "key": "k.pem", "auth_source": "s"}
    expected = ["--host-token", "--unix-listen", "--wrap-mode", "--max-headers", "--timeout", "--workers",
                "--legacy-syslog", "--key", "--auth-source"]
    named = []
    for option in mistakes:
        with pytest.raises(ConfigError) as error:
            build_config(**{**BASE, **{k: v for k, v in mistakes.items() if k not in named}})
        assert str(error.value).startswith(expected[len(named)])
        named.append(option)


def test_workers_auto_is_zero_and_a_count_is_itself():
    assert build_config(**BASE, workers="auto").workers == 0
    assert build_config(**BASE, workers="4").workers == 4


@pytest.mark.parametrize(("text", "expected"), [
    ("9100", TcpAddress("127.0.0.1", 9100)), (":9100", TcpAddress("127.0.0.1", 9100)),
    ("0.0.0.0:9100", TcpAddress("0.0.0.0", 9100)), ("[::1]:0", TcpAddress("::1", 0)),
])
def test_metrics_listens_on_loopback_unless_told(text, expected):
    assert build_config(arguments=("6080", "127.0.0.1:5900"), metrics=text).metrics == expected


@pytest.mark.parametrize(("options", "message"), [
    ({"metrics": "6080"}, "give metrics a port of its own"),
    ({"metrics": "x:y"}, "--metrics: 'x:y' is not [HOST:]PORT"),
    ({"target_proxy_protocol": "v2", "ssl_target": True}, "cannot be combined with --ssl-target"),
])
def test_metrics_and_target_proxy_protocol_mistakes(options, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_config(arguments=("6080", "127.0.0.1:5900"), **options)
