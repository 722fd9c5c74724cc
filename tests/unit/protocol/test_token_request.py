"""Where a client's token is in its request, and how a log line may show it."""
import pytest

from websockify.protocol.token_request import (
    printable_target,
    redact,
    redact_target,
    token_from_host,
    token_from_target,
)


@pytest.mark.parametrize("target,token", [
    ("/websockify?token=abc", "abc"),
    ("/?token=abc&token=def", "abc"),  # the first value
    ("/?token=abc%0A", "abc"),  # a trailing newline stripped
    ("/?token=", None),
    ("/?other=1", None),
    ("/", None),
])
def test_token_from_target(target, token):
    assert token_from_target(target) == token


@pytest.mark.parametrize("host,token", [
    ("vnc1.example.com:6080", "vnc1.example.com"),
    ("vnc1.example.com", "vnc1.example.com"),
    ("[::1]:6080", "::1"),  # a bracketed IPv6 literal keeps its colons
    ("[::1]", "::1"),
    ("[]", None),
    ("", None),
    (None, None),
])
def test_token_from_host(host, token):
    assert token_from_host(host) == token


def test_a_log_line_shows_a_few_characters_of_a_token():
    assert redact("secret-token") == "secr…" and redact("abc") == "…"
    assert redact_target("/?path=websockify%3Ftoken%3Dsecret-token") == "/?path=websockify%3Ftoken%3Dsecr…"
    assert redact_target("/?token=secret-token&x=1") == "/?token=secr…&x=1"
    assert printable_target("/?token=secret\x1b[31m") == "/?token=secr…"
    assert printable_target("/plain\x1b") != "/plain\x1b"  # escaped
