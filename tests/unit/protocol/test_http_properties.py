"""Properties of the request head reader, the static path rules and the origin check."""
from websockify.protocol.http import RequestReader


# -- regressions ------------------------------------------------------------------

def test_header_values_above_0x7f_are_read_as_latin1():
    head = RequestReader().feed(b"GET / HTTP/1.1\r\nX: caf\xe9 \x80\xff\r\n\r\n")
    assert head is not None and head.headers["X"] == "caf\xe9 \x80\xff"
