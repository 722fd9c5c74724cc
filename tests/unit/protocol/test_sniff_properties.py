"""Properties of the first-bytes classifier, for any bytes a client may send."""
from hypothesis import assume, given
from hypothesis import strategies as st

from websockify.protocol.sniff import FLASH_POLICY_REQUEST, Kind, sniff

# Bytes near the interesting cases: TLS and Flash starts, method letters, garbage.
first_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"\x16\x03\x01", b"\x80", b"<", FLASH_POLICY_REQUEST, b"GET ", b"g", b"\x00"]),
              st.binary(max_size=32)),
)


@given(first_bytes)
def test_any_bytes_get_a_kind(data):
    assert isinstance(sniff(data), Kind)


@given(first_bytes, st.data())
def test_a_decision_never_changes_as_more_bytes_arrive(data, draw):
    # The server decides on the bytes buffered so far: a longer buffer must agree.
    cut = draw.draw(st.integers(0, len(data)))
    early = sniff(data[:cut])
    if early is not Kind.NEED_MORE:
        assert sniff(data) is early


@given(st.integers(0, len(FLASH_POLICY_REQUEST) - 1))
def test_a_prefix_of_the_flash_request_needs_more(length):
    assert sniff(FLASH_POLICY_REQUEST[:length]) is Kind.NEED_MORE


@given(st.binary(max_size=32))
def test_the_whole_flash_request_is_flash(tail):
    assert sniff(FLASH_POLICY_REQUEST + tail) is Kind.FLASH_POLICY


@given(st.sampled_from([0x16, 0x80]), st.binary(max_size=64))
def test_tls_first_bytes_are_tls(first, tail):
    assert sniff(bytes([first]) + tail) is Kind.TLS


PROXY_STARTS = (b"PROXY ", b"\r\n\r\n\x00\r\nQUIT\n")


def proxy_prefix(data: bytes) -> bool:
    """A start of a PROXY header, or one with more after it."""
    return any(start.startswith(data[:len(start)]) for start in PROXY_STARTS)


@given(st.integers(0x41, 0x5A), st.binary(max_size=64))
def test_an_upper_case_letter_starts_http(first, tail):
    data = bytes([first]) + tail
    assume(not proxy_prefix(data))  # "PROXY ": a load balancer's header (below)
    assert sniff(data) is Kind.HTTP


@given(st.sampled_from(PROXY_STARTS), st.binary(max_size=64), st.data())
def test_a_proxy_header_is_told_apart_and_its_start_needs_more(start, tail, data):
    assert sniff(start + tail) is Kind.PROXY_HEADER
    cut = data.draw(st.integers(1, len(start) - 1))
    assert sniff(start[:cut]) is Kind.NEED_MORE


@given(st.binary(min_size=1, max_size=64).filter(
    lambda d: d[0] not in (0x16, 0x80) and not 0x41 <= d[0] <= 0x5A and d[0:1] != b"<" and not proxy_prefix(d)))
def test_other_first_bytes_are_unknown(data):
    assert sniff(data) is Kind.UNKNOWN
