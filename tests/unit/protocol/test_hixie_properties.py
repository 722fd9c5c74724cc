"""Properties of Hixie-76: the handshake challenge, and the session's framing in any chunks."""
import base64

import pytest

from websockify.errors import HttpError
from websockify.protocol.hixie import HixieSession, challenge_response


def frame(data):
    return b"\x00" + base64.b64encode(data) + b"\xff"


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
