import pytest

from websockify.protocol.sniff import FLASH_POLICY_REQUEST, Kind, flash_policy_response, sniff


@pytest.mark.parametrize("data,kind", [
    (b"", Kind.NEED_MORE),
    (b"\x16\x03\x01", Kind.TLS),
    (b"\x80\x2e", Kind.TLS),
    (b"GET / HTTP/1.1", Kind.HTTP),
    (b"HEAD", Kind.HTTP),
    (b"<policy", Kind.NEED_MORE),
    (FLASH_POLICY_REQUEST, Kind.FLASH_POLICY),
    (b"<html>", Kind.UNKNOWN),
    (b"\x00\x00", Kind.UNKNOWN),
    (b"get / http/1.1", Kind.UNKNOWN),
])
def test_sniff(data, kind):
    assert sniff(data) is kind


def test_policy_names_the_port_and_ends_with_nul():
    reply = flash_policy_response(6080)
    assert b'to-ports="6080"' in reply and reply.endswith(b"\x00")
