"""Properties of the subprotocols' payload rules, for any bytes in any fragments."""
import base64

from hypothesis import example, given
from hypothesis import strategies as st

from websockify.errors import PayloadError
from websockify.protocol.codec import MessageDecoder, encode_for_client


def fragments(data, cuts):
    """`data` cut at `cuts`; a cut given twice makes an empty fragment, as a client may send."""
    points = sorted(c for c in cuts if 0 < c < len(data))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def decode(subprotocol, is_text, pieces):
    """The target's bytes for one message in fragments, or the PayloadError it raised."""
    decoder = MessageDecoder(subprotocol, is_text)
    out = b""
    for index, piece in enumerate(pieces):
        try:
            out += decoder.feed(piece, index == len(pieces) - 1)
        except PayloadError as exc:
            return exc
    return out


cut_lists = st.lists(st.integers(0, 400), max_size=8)


@given(st.binary(max_size=300), cut_lists, st.booleans(), st.booleans())
def test_base64_round_trips_in_any_fragments(data, cuts, is_text, empty_last):
    is_text_out, encoded = encode_for_client("base64", data)
    assert is_text_out
    pieces = fragments(encoded, cuts) + [b""] * empty_last or [b""]
    assert decode("base64", is_text, pieces) == data


@given(st.sampled_from([None, "binary"]), st.binary(max_size=300), cut_lists)
def test_binary_passes_bytes_unchanged(subprotocol, data, cuts):
    assert encode_for_client(subprotocol, data) == (False, data)
    assert decode(subprotocol, False, fragments(data, cuts) or [b""]) == data


@given(st.sampled_from([None, "binary"]), st.binary(max_size=40) | st.text(max_size=40).map(str.encode),
       cut_lists)
def test_text_in_binary_mode_is_checked_utf8_whatever_the_fragments(subprotocol, data, cuts):
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    result = decode(subprotocol, True, fragments(data, cuts) or [b""])
    assert result == data if valid else isinstance(result, PayloadError)


def whole_verdict(text):
    if len(text) % 4:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


BASE64_ISH = b"ABCDQRSTabcdwxyz0189+/=-_ \n\x00\xff"


@given(st.binary(max_size=40) | st.lists(st.sampled_from(list(BASE64_ISH)), max_size=40).map(bytes),
       cut_lists, st.booleans())
@example(b"QQ==QQ==", [4], False)
@example(b"QUI=QUJD", [4], True)
@example(b"QQ==QQ==", [4, 4], False)
def test_base64_is_judged_on_the_whole_message_whatever_the_fragments(text, cuts, is_text):
    # Invalid text is a PayloadError, and only that, with any fragmentation: the
    # same message is never refused in one frame and accepted in pieces.
    expected = whole_verdict(text)
    result = decode("base64", is_text, fragments(text, cuts) or [b""])
    if expected is None:
        assert isinstance(result, PayloadError)
        assert result.close_code == 1007
    else:
        assert result == expected


def test_base64_after_padding_in_a_later_fragment_is_refused():
    for pieces in ([b"QQ==", b"QQ=="], [b"QUI=", b"", b"QUJD"]):
        assert isinstance(decode("base64", True, pieces), PayloadError)
