"""Properties of the request head reader, the static path rules and the origin check."""
import pytest

from websockify.errors import HttpError
from websockify.protocol.http import RequestReader


# -- regressions ------------------------------------------------------------------

def test_header_values_above_0x7f_are_read_as_latin1():
    head = RequestReader().feed(b"GET / HTTP/1.1\r\nX: caf\xe9 \x80\xff\r\n\r\n")
    assert head is not None and head.headers["X"] == "caf\xe9 \x80\xff"


def test_a_head_of_exactly_the_limit_passes_in_one_read():
    raw = b"GET / HTTP/1.1\r\nA:1\r\nB:2\r\nC:3\r\n\r\n"
    assert RequestReader(max_header_bytes=len(raw)).feed(raw) is not None
    with pytest.raises(HttpError) as info:
        RequestReader(max_header_bytes=len(raw) - 1).feed(raw)
    assert info.value.status == 431
