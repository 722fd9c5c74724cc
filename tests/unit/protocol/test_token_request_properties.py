"""Properties of a request target in a log line (issue 17, item 10): whatever the encoding of
a token or a password, the line shows at most the token's first four characters and nothing
of the password, and no control character."""
from __future__ import annotations

import string
import unicodedata
from urllib.parse import parse_qs, unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from websockify.protocol.token_request import printable_target, redact_target, token_from_target

MARKER = "ZQ9XW"  # in every secret past its fourth character; nowhere else in a target
SAFE = frozenset(string.ascii_letters + string.digits + "-._~")
HEX = frozenset(string.hexdigits)


@st.composite
def encoded_once(draw, text: str) -> str:
    """`text` percent-encoded as some client might: a safe character literal or escaped (in
    either case of hex), the rest escaped, and a `%` that starts no escape sometimes left as is
    (every reader keeps `%ZZ` as it is)."""
    out = []
    for i, char in enumerate(text):
        loose_percent = char == "%" and not (len(text) > i + 2 and text[i + 1] in HEX and text[i + 2] in HEX)
        if (char in SAFE or loose_percent) and draw(st.booleans()):
            out.append(char)
            continue
        for byte in char.encode("utf-8"):
            out.append(f"%{byte:02X}" if draw(st.booleans()) else f"%{byte:02x}")
    return "".join(out)


@st.composite
def encoded(draw, text: str, least: int = 1, most: int = 3) -> str:
    for _ in range(draw(st.integers(least, most))):
        text = draw(encoded_once(text))
    return text


@st.composite
def keys(draw, name: str) -> str:
    """`name` in any letter case, in any encoding (or none)."""
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    return draw(encoded(cased, least=0, most=2))


secret_text = st.text(max_size=12) | st.sampled_from(["%ZZ", "%26", "&", "%", "#", "%2", "+"]).map(lambda s: s * 3)
params = st.lists(st.sampled_from(["a=1", "x", "host=h", "port=5900", "b=%41", "=", "t=%ZZ"]), max_size=3)


@st.composite
def targets(draw, name: str, secret: str) -> str:
    """A request target carrying `secret` as parameter `name`: at the top level, in the
    fragment, or inside noVNC's path= (encoded once or more, or with a literal `?`)."""
    parameter = draw(keys(name)) + "=" + draw(encoded(secret))
    before, after = draw(params), draw(params)
    where = draw(st.sampled_from(["query", "fragment", "path", "path-literal"]))
    if where.startswith("path"):
        inner = "websockify?" + "&".join([*draw(params), parameter])
        parameter = "path=" + (inner if where == "path-literal" else draw(encoded(inner, least=1, most=2)))
    path = draw(st.sampled_from(["/", "/websockify", "/vnc.html", "/vnc_lite.html"]))
    if where == "fragment":
        return path + "?" + "&".join(before) + "#" + "&".join([*after, parameter])
    return path + "?" + "&".join([*before, parameter, *after])


def decodings(text: str) -> list[str]:
    found = [text]
    for _ in range(5):
        found.append(unquote(found[-1]))
    return found


def no_control(text: str) -> bool:
    return all(unicodedata.category(c) not in ("Cc", "Zl", "Zp", "Cs") for c in text)


@given(st.data(), secret_text)
def test_a_token_shows_at_most_four_characters(data, after):
    token = data.draw(st.text(min_size=4, max_size=4)) + MARKER + after
    target = data.draw(targets("token", token))
    shown = printable_target(target)
    assert not any(MARKER in text for text in decodings(shown)), (target, shown)
    assert not any(MARKER in text for text in decodings(redact_target(target)))
    assert no_control(shown)


@given(st.data(), secret_text, secret_text)
def test_a_password_shows_not_at_all(data, before, after):
    password = before + MARKER + after
    name = data.draw(st.sampled_from(["password", "pw", "passwd"]))
    target = data.draw(targets(name, password))
    shown = printable_target(target)
    assert not any(MARKER in text for text in decodings(shown)), (target, shown)
    assert no_control(shown)


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_target_is_one_short_escaped_line(target):
    shown = printable_target(target)
    assert no_control(shown) and len(shown.splitlines()) <= 1
    assert len(shown) <= 6 * 200 + 3


JUNK = st.text(alphabet="tokenTOKEN=&;%2636ZZ#?+ab", max_size=30)


@given(JUNK, st.sampled_from(["token", "TOKEN", "tok%65n", "%74oken"]), JUNK, JUNK)
def test_the_token_websockify_reads_is_never_shown_past_four_characters(before, key, value, after):
    """Against the reader that matters, over delimiters, escapes and invalid escapes around
    the value: when the token parse_qs finds holds MARKER past its fourth character, no
    decoding of the log line holds MARKER."""
    target = "/?" + before + key + "=" + value + MARKER + after
    token = token_from_target(target)
    if token is not None and MARKER in token[4:]:
        shown = printable_target(target)
        assert not any(MARKER in text for text in decodings(shown)), (target, shown)


@given(st.text(alphabet=string.ascii_letters + string.digits + "/._-", max_size=60),
       st.lists(st.sampled_from(["a=1", "host=h", "port=5900", "view_only=1"]), max_size=4))
def test_a_target_without_secrets_is_shown_as_it_is(path, params):
    target = "/" + path + ("?" + "&".join(params) if params else "")
    assert redact_target(target) == target
    assert parse_qs(urlsplit(redact_target(target)).query) == parse_qs(urlsplit(target).query)
