"""Properties of log-safe text: nothing a client sends can break or forge a log line."""
import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from websockify.protocol.logsafe import printable

texts = st.text(max_size=300) | st.binary(max_size=100).map(lambda b: b.decode("utf-8", "surrogateescape"))


def unescape(text):
    return re.sub(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})",
                  lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), text)


@given(texts, st.integers(1, 400))
def test_no_control_or_line_breaking_character_survives(text, limit):
    out = printable(text, limit)
    assert all(unicodedata.category(c) not in ("Cc", "Zl", "Zp") for c in out)
    assert len(out.splitlines()) <= 1
    assert len(out) <= 6 * limit + 3


@given(texts)
def test_the_escaping_is_unambiguous(text):
    assert unescape(printable(text, limit=len(text))) == text


@given(st.integers() | st.none() | st.binary(max_size=20) | st.floats())
def test_any_object_is_printable(value):
    out = printable(value)
    assert all(unicodedata.category(c) != "Cc" for c in out)
