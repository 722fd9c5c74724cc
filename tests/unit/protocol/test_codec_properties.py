"""Properties of the subprotocols' payload rules, for any bytes in any fragments."""
from websockify.errors import PayloadError
from websockify.protocol.codec import MessageDecoder


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


def test_base64_after_padding_in_a_later_fragment_is_refused():
    for pieces in ([b"QQ==", b"QQ=="], [b"QUI=", b"", b"QUJD"]):
        assert isinstance(decode("base64", True, pieces), PayloadError)
