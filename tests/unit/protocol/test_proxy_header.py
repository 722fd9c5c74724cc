"""PROXY protocol headers: the spec's examples, what load balancers send, what we refuse."""
from __future__ import annotations

import pytest

from websockify.protocol.proxy_header import (
    MAX_HEADER_BYTES,
    V2_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    TlvType,
    encode_v1,
    encode_v1_unknown,
    encode_v2,
    encode_v2_local,
    parse,
)

SIG = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
HTTP = b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
FFFF6 = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


def test_the_v2_signature_is_the_specs():
    assert V2_SIGNATURE == SIG
    assert MAX_HEADER_BYTES == 16 + V2_MAX_LENGTH == 4096


# -- the spec's own examples (section 2.1 and 2.2) --------------------------------

@pytest.mark.parametrize("line,source,destination", [
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", ("192.168.0.1", 56324), ("192.168.0.11", 443)),
    (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
     ("255.255.255.255", 65535), ("255.255.255.255", 65535)),
    (b"PROXY TCP6 " + FFFF6 + b" " + FFFF6 + b" 65535 65535\r\n",
     ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)),
    (b"PROXY TCP6 2001:DB8::1 ::1 1 0\r\n", ("2001:db8::1", 1), ("::1", 0)),
])
def test_spec_v1_lines(line, source, destination):
    assert parse(line + HTTP) == ProxyHeader(len(line), 1, source, destination)


@pytest.mark.parametrize("line", [
    b"PROXY UNKNOWN\r\n",
    # The longest line the spec allows: 107 bytes, the addresses after UNKNOWN ignored.
    b"PROXY UNKNOWN " + FFFF6 + b" " + FFFF6 + b" 65535 65535\r\n",
    b"PROXY UNKNOWN anything at all\r\n",
])
def test_spec_v1_unknown_lines_name_no_addresses(line):
    assert len(line) <= 107
    assert parse(line + CLIENT_HELLO) == ProxyHeader(len(line), 1, None, None)


def test_the_longest_v1_line_is_107_bytes():
    line = b"PROXY UNKNOWN " + FFFF6 + b" " + FFFF6 + b" 65535 65535\r\n"
    assert len(line) == 107 and parse(line).length == 107


# 192.168.0.1:56324 -> 192.168.0.11:443, as the v1 example, in binary.
V2_TCP4 = SIG + b"\x21\x11\x00\x0c" + b"\xc0\xa8\x00\x01" + b"\xc0\xa8\x00\x0b" + b"\xdc\x04" + b"\x01\xbb"
V2_TCP6 = (SIG + b"\x21\x21\x00\x24" + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"
           + bytes(15) + b"\x01" + b"\x30\x39" + b"\x00\x50")
V2_LOCAL = SIG + b"\x20\x00\x00\x00"
# AWS NLB: TCP4 and its TLV 0xEA, whose value is subtype 0x01 then the VPC endpoint id.
V2_AWS = (SIG + b"\x21\x11\x00\x29" + b"\x0a\x00\x00\x05" + b"\x0a\x00\x00\x06" + b"\x9c\x40" + b"\x17\x70"
          + b"\xea\x00\x17" + b"\x01vpce-08d2bf15fac5001c9" + b"\x04\x00\x00")


@pytest.mark.parametrize("header,source,destination,tlvs", [
    (V2_TCP4, ("192.168.0.1", 56324), ("192.168.0.11", 443), ()),
    (V2_TCP6, ("2001:db8::1", 12345), ("::1", 80), ()),
    (V2_LOCAL, None, None, ()),
    (V2_AWS, ("10.0.0.5", 40000), ("10.0.0.6", 6000), ((0xEA, b"\x01vpce-08d2bf15fac5001c9"), (0x04, b""))),
])
@pytest.mark.parametrize("payload", [b"", HTTP, CLIENT_HELLO])
def test_v2_headers(header, source, destination, tlvs, payload):
    assert parse(header + payload) == ProxyHeader(len(header), 2, source, destination, tlvs)


def test_a_tlv_by_type():
    header = parse(V2_AWS)
    assert header.tlv(TlvType.AWS) == b"\x01vpce-08d2bf15fac5001c9"
    assert header.tlv(TlvType.ALPN) is None


def test_v2_local_ignores_the_family_and_the_block():
    # The spec: with LOCAL the receiver discards the block, family included.
    header = SIG + b"\x20\xff\x00\x05" + b"junk!"
    assert parse(header) == ProxyHeader(21, 2, None, None)


def test_v2_unspec_family_skips_the_block():
    assert parse(SIG + b"\x21\x00\x00\x03abc") == ProxyHeader(19, 2, None, None)


def test_v2_unix_sockets_name_no_client_address_but_keep_their_tlvs():
    block = b"/run/client".ljust(108, b"\x00") + b"/run/server".ljust(108, b"\x00") + b"\x01\x00\x02h2"
    header = SIG + b"\x21\x31" + len(block).to_bytes(2, "big") + block
    assert parse(header) == ProxyHeader(len(header), 2, None, None, ((1, b"h2"),))


def test_ipv4_mapped_addresses_come_back_as_ipv4():
    assert parse(b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n").source == ("192.0.2.1", 1)
    mapped = SIG + b"\x21\x21\x00\x24" + bytes(10) + b"\xff\xff\xc0\x00\x02\x01" + bytes(15) + b"\x01" + bytes(4)
    assert parse(mapped).source == ("192.0.2.1", 0)


# -- not enough bytes yet --------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"P", b"PROXY", b"PROXY ", b"PROXY TCP", b"PROXY UNKNOWN\r",
                                  b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", b"\r", SIG[:5], SIG, SIG + b"\x21",
                                  SIG + b"\x21\x11\x00", V2_TCP4[:-1]])
def test_prefixes_need_more(data):
    assert parse(data) is None


def test_memoryview_and_bytearray():
    assert parse(memoryview(V2_TCP4 + HTTP)) == parse(bytearray(V2_TCP4)) == parse(V2_TCP4)


# -- refused ----------------------------------------------------------------------

@pytest.mark.parametrize("data,message", [
    (b"G", "neither"),
    (HTTP, "neither"),
    (CLIENT_HELLO, "neither"),
    (b"PR0", "'PROXY '"),
    (b"PROXY  ", "unknown protocol"),
    (b"PROXY TCP5", "unknown protocol"),
    (b"PROXY tcp4", "unknown protocol"),
    (b"PROXY UNKNOWNX", "unknown protocol"),
    (b"PROXY TCP4 1.2.3.4%eth0", "character"),
    (b"PROXY TCP4 1.2.3.4\n", "character"),
    (b"PROXY TCP4 1.2.3.4\r5", "character"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2", "character"),
    (b"PROXY TCP4 " + b"1" * 96, "no CRLF within 107"),
    (b"PROXY UNKNOWN " + b"x" * 100, "no CRLF within 107"),
    (b"PROXY \r\n", "unknown protocol"),
    (b"PROXY TCP4\r\n", "found 1"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "found 3"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "found 5"),
    (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "found 5"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "found 5"),
    (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "source '1.2.3' is not an IPv4"),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "not an IPv4"),
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not an IPv4"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not an IPv6"),
    (b"PROXY TCP6 ::1 ::g 1 2\r\n", "character"),
    (b"PROXY TCP6 ::1 ::12345 1 2\r\n", "destination '::12345'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port '65536'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n", "destination port '080'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 ff\r\n", "destination port"),
    (SIG[:4] + b"X", "version 2 signature"),
    (b"\r\n\r\n\x00\r\nQUIT\r", "version 2 signature"),
    (SIG + b"\x11", "unknown version 1"),
    (SIG + b"\x31", "unknown version 3"),
    (SIG + b"\x22", "unknown command 2"),
    (SIG + b"\x2f", "unknown command 15"),
    (SIG + b"\x21\x41", "unknown address family"),
    (SIG + b"\x21\x13", "unknown address family"),
    (SIG + b"\x21\x12", "UDP4"),
    (SIG + b"\x21\x22", "UDP6"),
    (SIG + b"\x21\x32", "UNIX_DGRAM"),
    (SIG + b"\x21\x11\x0f\xf1", "4081 bytes"),
    (SIG + b"\x20\x00\xff\xff", "65535 bytes"),
    (SIG + b"\x21\x11\x00\x0b", "cannot hold the TCP4"),
    (SIG + b"\x21\x21\x00\x0c", "cannot hold the TCP6"),
    (SIG + b"\x21\x31\x00\x24", "cannot hold the UNIX_STREAM"),
    (V2_TCP4[:15] + b"\x0e" + V2_TCP4[16:] + b"\x01\x00", "cut off"),
    (V2_TCP4[:15] + b"\x10" + V2_TCP4[16:] + b"\x01\x00\x02h", "runs past"),
])
def test_refused(data, message):
    with pytest.raises(ProxyHeaderError, match=message):
        parse(data)


def test_messages_escape_what_the_client_sent():
    with pytest.raises(ProxyHeaderError) as caught:
        parse(b"PROXY TC\x1b[2J\r\n")
    assert "\x1b" not in str(caught.value) and "\\x1b" in str(caught.value)


def test_refused_errors_are_value_errors():
    assert issubclass(ProxyHeaderError, ValueError)


# -- encoding ---------------------------------------------------------------------

def test_encode_v1():
    assert encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == \
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    assert encode_v1(("2001:db8::1", 1), ("::1", 2)) == b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
    # A dual-stack socket reports IPv4 clients mapped: that is still TCP4.
    assert encode_v1(("::ffff:192.0.2.1", 1), ("::ffff:192.0.2.2", 2)) == b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"
    # v1 has one family for both: an IPv4 address beside an IPv6 one is written mapped.
    assert encode_v1(("192.0.2.1", 1), ("::1", 2)) == b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"
    assert encode_v1(("fe80::1%eth0", 1), ("[::1]", 2)) == b"PROXY TCP6 fe80::1 ::1 1 2\r\n"
    assert encode_v1_unknown() == b"PROXY UNKNOWN\r\n"


def test_encode_v2():
    assert encode_v2(("192.168.0.1", 56324), ("192.168.0.11", 443)) == V2_TCP4
    assert encode_v2(("2001:db8::1", 12345), ("::1", 80)) == V2_TCP6
    assert encode_v2_local() == V2_LOCAL
    assert encode_v2(("10.0.0.5", 40000), ("10.0.0.6", 6000),
                     tlvs=[(0xEA, b"\x01vpce-08d2bf15fac5001c9"), (TlvType.NOOP, b"")]) == V2_AWS
    mixed = parse(encode_v2(("192.0.2.1", 1), ("::1", 2)))
    assert mixed.source == ("192.0.2.1", 1) and mixed.destination == ("::1", 2)


@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
@pytest.mark.parametrize("source,destination", [
    (("", 1), ("::1", 2)), (("/run/sock", 0), ("::1", 2)), (("host.example", 1), ("::1", 2)),
    (("1.2.3.4", -1), ("::1", 2)), (("1.2.3.4", 1), ("::1", 65536)),
])
def test_encode_refuses_what_no_header_can_say(encode, source, destination):
    with pytest.raises(ValueError):
        encode(source, destination)


def test_encode_v2_refuses_tlvs_parse_would_refuse():
    with pytest.raises(ValueError):
        encode_v2(("1.2.3.4", 1), ("1.2.3.4", 2), tlvs=[(0x100, b"")])
    with pytest.raises(ValueError):
        encode_v2(("1.2.3.4", 1), ("1.2.3.4", 2), tlvs=[(0xE0, bytes(V2_MAX_LENGTH))])
