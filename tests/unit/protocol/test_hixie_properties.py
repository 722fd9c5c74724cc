"""Properties of Hixie-76: the handshake challenge, and the session's framing in any chunks."""
import base64
import hashlib
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.datastructures import Headers

from websockify.errors import HttpError
from websockify.protocol.hixie import HixieSession, challenge_response, handshake_response

from .inputs import receive, split

# Key characters besides digits and spaces; "²" is a digit to str.isdigit() but not to the draft.
FILLERS = "abcXYZ!%&*+/=?^_~\u00b2\u00b3\u00b9\u00bd\u00e9"


@st.composite
def keys(draw):
    """(Sec-WebSocket-Key1/2 value, the number it stands for)."""
    number = draw(st.integers(0, 0xFFFFFFFF))
    spaces = draw(st.integers(1, 12))
    chars = list(str(number * spaces))
    for extra in [" "] * spaces + draw(st.lists(st.sampled_from(FILLERS), max_size=10)):
        chars.insert(draw(st.integers(0, len(chars))), extra)  # the digits keep their order
    return "".join(chars), number


@given(keys(), keys(), st.binary(min_size=8, max_size=8))
def test_the_challenge_is_md5_of_the_two_numbers_and_key3(key1, key2, key3):
    (text1, number1), (text2, number2) = key1, key2
    expected = hashlib.md5(struct.pack(">II", number1, number2) + key3).digest()
    assert challenge_response(text1, text2, key3) == expected


latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)


@given(latin1_text | keys().map(lambda k: k[0]), latin1_text | keys().map(lambda k: k[0]),
       st.binary(min_size=8, max_size=8))
@example("1 \u00b2", "1 1", b"12345678")
@example("1 " + "1" * 5000, "1 1", b"12345678")
def test_any_keys_give_16_bytes_or_400(key1, key2, key3):
    try:
        assert len(challenge_response(key1, key2, key3)) == 16
    except HttpError as exc:
        assert exc.status == 400


@given(keys(), keys(), st.binary(min_size=8, max_size=8), st.dictionaries(
    st.sampled_from(["Host", "Origin", "Sec-WebSocket-Protocol"]), latin1_text), st.booleans(),
    st.text("/abc%?=&", max_size=20))
def test_the_handshake_response_is_one_head_then_the_challenge(key1, key2, key3, extra, secure, path):
    headers = Headers([("Sec-WebSocket-Key1", key1[0]), ("Sec-WebSocket-Key2", key2[0]), *extra.items()])
    response = handshake_response(headers, "/" + path, key3, secure)
    head, body = response[:-16], response[-16:]
    assert body == challenge_response(key1[0], key2[0], key3)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 101 WebSocket Protocol Handshake" and lines[-2:] == ["", ""]
    assert len(lines) == 7 + bool(extra.get("Sec-WebSocket-Protocol"))  # no header smuggled in


def run(chunks, max_bytes, eof=False):
    """(target bytes, close code, bytes and end-of-stream for the client) after feeding chunks."""
    s = HixieSession(max_bytes)
    target, out = b"", []
    for chunk in chunks:
        target += b"".join(receive(s, chunk))  # as a reused read buffer
        out += s.data_to_send()
    if eof:
        target += b"".join(s.receive_eof())
        out += s.data_to_send()
    assert s.close_code in (None, 1000, 1002, 1006, 1007, 1009)
    assert s.client_done == (s.close_code is not None and (s.close_code != 1000 or not s.is_open) or eof)
    return target, s.close_code, out


def frame(data):
    return b"\x00" + base64.b64encode(data) + b"\xff"


@given(st.lists(st.binary(max_size=60), max_size=6), st.booleans(), st.lists(st.integers(0, 600), max_size=10))
def test_frames_in_any_chunks_reach_the_target_whole(messages, close, cuts):
    stream = b"".join(frame(m) for m in messages) + (b"\xff\x00" if close else b"")
    target, code, out = run(split(stream, cuts), 1 << 20)
    assert target == b"".join(messages)
    if close:
        assert code == 1000 and out == [b"\xff\x00", b""]
    else:
        assert code is None and out == []


hixie_ish = st.lists(st.sampled_from([b"\x00", b"\xff", b"QUJD", b"QQ==", b"!", b"\x80", b"\xff\x00", b"\xff\x01"])
                     | st.binary(max_size=4) | st.builds(frame, st.binary(max_size=30)), max_size=10).map(b"".join)


@given(hixie_ish, st.integers(1, 60), st.lists(st.integers(0, 400), max_size=10), st.booleans())
def test_any_bytes_in_any_chunks_get_one_verdict(stream, max_bytes, cuts, eof):
    whole = run([stream] if stream else [], max_bytes, eof)
    assert run(split(stream, cuts), max_bytes, eof)[:2] == whole[:2]


@given(st.lists(st.binary(max_size=100), max_size=5), st.booleans())
def test_target_bytes_reach_the_client_as_base64_frames(messages, close_first):
    s = HixieSession(1 << 20)
    if close_first:
        s.close(1000, "target closed")
    for m in messages:
        s.send_payload(m)
    out = s.data_to_send()
    expected = [b"\xff\x00"] if close_first else [frame(m) for m in messages]
    assert out == expected


# -- regressions ------------------------------------------------------------------

@pytest.mark.parametrize("key,same", [("1 \u00b2", "1 "), ("3 \u0663", "3 ")])
def test_only_ascii_digits_count(key, same):
    assert challenge_response(key, "1 1", b"12345678") == challenge_response(same, "1 1", b"12345678")


def test_a_key_of_thousands_of_digits_is_400():
    with pytest.raises(HttpError) as info:
        challenge_response("1 " + "1" * 5000, "1 1", b"12345678")
    assert info.value.status == 400


def test_a_frame_over_the_limit_is_refused_even_in_one_read():
    s = HixieSession(4)
    assert s.receive_data(frame(b"ABCD")) == []  # 8 base64 characters
    assert s.close_code == 1009
