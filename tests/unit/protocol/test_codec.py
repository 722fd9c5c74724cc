import base64
import os

import pytest

from websockify.errors import PayloadError
from websockify.protocol.codec import MessageDecoder, encode_for_client


def test_binary_passes_bytes_through():
    assert MessageDecoder("binary", False).feed(b"\x00\xff", True) == b"\x00\xff"
    assert MessageDecoder(None, False).feed(b"abc", True) == b"abc"


def test_text_in_binary_mode_is_its_utf8_bytes_and_validated_across_fragments():
    decoder = MessageDecoder("binary", True)
    data = "é".encode()
    assert decoder.feed(data[:1], False) == data[:1]  # a split code point is fine
    assert decoder.feed(data[1:], True) == data[1:]
    with pytest.raises(PayloadError):
        MessageDecoder("binary", True).feed(b"\xff", True)


@pytest.mark.parametrize("cuts", [[], [1], [3, 5], [2, 3, 7, 11]])
def test_base64_fragments_on_any_boundary(cuts):
    payload = os.urandom(37)
    text = base64.b64encode(payload)
    decoder = MessageDecoder("base64", True)
    out, last = b"", 0
    for cut in cuts:
        out += decoder.feed(text[last:cut], False)
        last = cut
    out += decoder.feed(text[last:], True)
    assert out == payload


@pytest.mark.parametrize("bad", [b"abc", b"ab!d", b"====", b"YW=j"])
def test_bad_base64(bad):
    with pytest.raises(PayloadError):
        MessageDecoder("base64", True).feed(bad, True)


def test_encode():
    assert encode_for_client("base64", b"hi") == (True, b"aGk=")
    assert encode_for_client("binary", b"hi") == (False, b"hi")
    assert encode_for_client(None, b"hi") == (False, b"hi")
