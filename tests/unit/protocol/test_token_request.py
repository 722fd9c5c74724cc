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


@pytest.mark.parametrize("target,shown", [
    # issue 17, item 10: a token holding %26 or %ZZ was shown past its first four characters
    ("/?token=abc%26defsecret", "/?token=…%26…"),
    ("/?token=%ZZsecret", "/?token=%ZZs…"),
    ("/?path=websockify%3Ftoken%3D%ZZsecret", "/?path=websockify%3Ftoken%3D%ZZs…"),
    # noVNC's ?password= was logged in full; any letter case, any encoding of the key, the fragment
    ("/vnc.html?password=hunter2&autoconnect=1", "/vnc.html?password=…&autoconnect=1"),
    ("/vnc.html?PassWord=hunter2", "/vnc.html?PassWord=…"),
    ("/vnc.html?pass%77ord=hunter2", "/vnc.html?pass%77ord=…"),
    ("/vnc.html?pass%2577ord=hunter2", "/vnc.html?pass%2577ord=…"),
    ("/vnc.html?a=1#password=hunter2", "/vnc.html?a=1#password=…"),
    ("/vnc.html?a=1;password=hunter2", "/vnc.html?a=1;password=…"),
    # inside path=, encoded once, twice, or not at all
    ("/vnc.html?path=websockify%3Fpassword%3Dhunter2", "/vnc.html?path=websockify%3Fpassword%3D…"),
    ("/vnc.html?path=websockify%253Ftoken%253Dsecret-token", "/vnc.html?path=websockify%253Ftoken%253Dsecr…"),
    ("/vnc.html?path=websockify?token=secret-token", "/vnc.html?path=websockify?token=secr…"),
    ("/?TOKEN=secret-token", "/?TOKEN=secr…"),
    ("/?tok%65n=secret-token", "/?tok%65n=secr…"),
    ("/?token=%C3%A9t%C3%A9-secret", "/?token=%C3%A9t%C3%A9-…"),  # four characters, not four bytes
    ("/?token=abc;def", "/?token=abc;…"),  # parse_qs keeps `;` in the token
    ("/?token=abcd", "/?token=…"),  # a short token is not shown at all
    ("/?password=", "/?password="),
    ("/static/app.js", "/static/app.js"),
    ("/?host=h&port=5900&path=websockify", "/?host=h&port=5900&path=websockify"),
])
def test_a_log_line_shows_no_secret_in_any_encoding(target, shown):
    assert redact_target(target) == shown


def test_a_long_target_is_cut_after_the_secrets_are():
    target = "/?token=" + "s" * 20000
    assert printable_target(target) == "/?token=ssss…..."
    assert printable_target("/?" + "a" * 300 + "&password=x") == "/?" + "a" * 198 + "..."
