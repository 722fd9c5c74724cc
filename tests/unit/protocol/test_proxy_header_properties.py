"""Properties of the PROXY protocol parser, for any bytes a connection may start with."""
from __future__ import annotations

import ipaddress

from hypothesis import assume, given
from hypothesis import strategies as st

from websockify.protocol.proxy_header import (
    MAX_HEADER_BYTES,
    V1_MAX_BYTES,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    encode_v1,
    encode_v1_unknown,
    encode_v2,
    encode_v2_local,
    parse,
)

ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(str)
ips = st.one_of(ipv4s, ipv6s, ipv4s.map(lambda ip: f"::ffff:{ip}"))
ports = st.integers(0, 65535)
endpoints = st.tuples(ips, ports)
tlvs = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=5)
payloads = st.one_of(st.binary(max_size=64), st.sampled_from([
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", V2_SIGNATURE]))


def normal(endpoint: tuple[str, int]) -> tuple[str, int]:
    address = ipaddress.ip_address(endpoint[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address), endpoint[1]


@st.composite
def valid_headers(draw) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return encode_v1(draw(endpoints), draw(endpoints))
    if kind == 1:
        return encode_v2(draw(endpoints), draw(endpoints), tlvs=draw(tlvs))
    return encode_v1_unknown() if kind == 2 else encode_v2_local()


def outcome(data: bytes) -> ProxyHeader | None | type[ProxyHeaderError]:
    try:
        return parse(data)
    except ProxyHeaderError:
        return ProxyHeaderError


# Bytes near the interesting cases: both signatures, cut, bent, or followed by anything.
near_headers = st.one_of(
    st.binary(max_size=128),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN", V2_SIGNATURE,
                               V2_SIGNATURE + b"\x21\x11", V2_SIGNATURE + b"\x21\x21", V2_SIGNATURE + b"\x20"]),
              st.binary(max_size=128)),
    st.builds(lambda head, tail: head + tail, valid_headers(), payloads),
)


@given(endpoints, endpoints, payloads)
def test_v1_round_trip(source, destination, payload):
    line = encode_v1(source, destination)
    assert len(line) <= V1_MAX_BYTES
    assert parse(line + payload) == ProxyHeader(len(line), 1, normal(source), normal(destination))


@given(endpoints, endpoints, tlvs, payloads)
def test_v2_round_trip(source, destination, extra, payload):
    header = encode_v2(source, destination, tlvs=extra)
    parsed = ProxyHeader(len(header), 2, normal(source), normal(destination), tuple(extra))
    assert parse(header + payload) == parsed
    assert parse(memoryview(bytearray(header + payload))) == parsed


@given(valid_headers(), st.data())
def test_every_prefix_of_a_header_needs_more(header, draw):
    cut = draw.draw(st.integers(0, len(header) - 1))
    assert parse(header[:cut]) is None


@given(near_headers)
def test_any_bytes_give_a_header_none_or_our_error(data):
    try:
        result = parse(data)
    except ProxyHeaderError as error:
        assert str(error) and "\n" not in str(error) and "\r" not in str(error)
        return
    if result is None:
        assert len(data) < MAX_HEADER_BYTES
    else:
        assert 0 < result.length <= min(len(data), MAX_HEADER_BYTES)


@given(near_headers, st.data())
def test_a_decision_never_changes_as_more_bytes_arrive(data, draw):
    cut = draw.draw(st.integers(0, len(data)))
    early = outcome(data[:cut])
    if early is not None:
        assert outcome(data) == early


@given(valid_headers(), st.data())
def test_a_bent_header_is_refused_or_read_never_crashes(header, draw):
    position = draw.draw(st.integers(0, len(header) - 1))
    value = draw.draw(st.integers(0, 255))
    bent = header[:position] + bytes([value]) + header[position + 1:]
    assume(bent != header)
    result = outcome(bent + b"GET / HTTP/1.1\r\n")
    assert result is ProxyHeaderError or result is None or isinstance(result, ProxyHeader)


@given(st.binary(min_size=1, max_size=32).filter(lambda d: d[0] not in b"P\r"))
def test_one_wrong_first_byte_is_enough(data):
    assert outcome(data[:1]) is ProxyHeaderError


@given(st.binary(min_size=V1_MAX_BYTES - 6, max_size=V1_MAX_BYTES).filter(lambda d: b"\r\n" not in d))
def test_v1_without_crlf_is_refused_by_107_bytes(body):
    assert outcome((b"PROXY UNKNOWN " + body)[:V1_MAX_BYTES]) is ProxyHeaderError


@given(st.integers(MAX_HEADER_BYTES - 15, 0xFFFF))
def test_v2_over_our_bound_is_refused_from_its_length_field(length):
    assert outcome(V2_SIGNATURE + b"\x21\x11" + length.to_bytes(2, "big")) is ProxyHeaderError
