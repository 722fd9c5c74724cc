"""Properties of the forwarded-client reader, for any headers a client or proxy may send."""
from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from websockets.datastructures import Headers

from websockify.access_lists import normal_ip
from websockify.protocol.forwarded import Source, client_address

NAMES = ["Forwarded", "X-Forwarded-For", "X-Real-IP"]
# What a header value may hold once the HTTP reader has it: latin-1, no CR, LF or NUL.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)
near_text = st.one_of(header_text, st.lists(st.sampled_from(
    ['for=', '"', "[", "]", ":", ",", ";", " ", "_x", "unknown", "192.0.2.1", "2001:db8::1", "10.0.0.1",
     "::ffff:10.0.0.2", "\\", "=", "proto=http", "80", "%eth0"]), max_size=12).map("".join))
ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(str)
ips = st.one_of(ipv4s, ipv6s, st.sampled_from(["10.0.0.1", "10.0.0.2", "10.9.9.9", "127.0.0.1"]))


def in_ten(ip: str) -> bool:
    return ip.startswith("10.") or ip == "127.0.0.1"


def headers_of(pairs: list[tuple[str, str]]) -> Headers:
    try:
        return Headers(pairs)
    except Exception:
        assume(False)
        raise


@given(st.lists(st.tuples(st.sampled_from(NAMES), near_text), max_size=4), ips, st.booleans())
def test_any_headers_give_the_peer_or_an_address_they_name(pairs, peer, trust_all):
    headers = headers_of(pairs)
    result = client_address(headers, peer, (lambda ip: True) if trust_all else in_ten)
    assert result == normal_ip(peer) or result in {normal_ip(part) for _, text in headers.raw_items()
                                                   for part in _pieces(text)}


def _pieces(text: str) -> set[str]:
    """Every substring that might be an address: generous, the test only bounds the result."""
    return {text[i:j] for i in range(len(text)) for j in range(i + 1, min(len(text), i + 60) + 1)}


@given(st.lists(st.tuples(st.sampled_from(NAMES), near_text), max_size=4), ips)
def test_an_untrusted_peer_is_the_answer_whatever_the_headers(pairs, peer):
    assert client_address(headers_of(pairs), peer, lambda ip: False) == normal_ip(peer)


@given(near_text, st.one_of(ipv4s, ipv6s).filter(lambda ip: not in_ten(ip)),
       st.lists(st.sampled_from(["10.0.0.3", "10.1.2.3", "127.0.0.1"]), max_size=3))
def test_a_forged_left_part_never_wins_in_x_forwarded_for(forged, client, proxies):
    value = ", ".join([forged, client, *proxies])
    assert client_address(headers_of([("X-Forwarded-For", value)]), "10.0.0.1", in_ten) == normal_ip(client)


@given(near_text, st.one_of(ipv4s, ipv6s).filter(lambda ip: not in_ten(ip)), st.booleans())
def test_a_forged_left_part_never_chooses_the_forwarded_answer(forged, client, same_line):
    # A proxy appends `for=` to the client's own header; an unbalanced quote in the
    # client's part may spoil the hop (then the answer is the proxy), never choose it.
    node = f'"[{client}]:443"' if ":" in client else client
    pairs = [("Forwarded", f"{forged}, for={node}")] if same_line else [("Forwarded", forged),
                                                                        ("Forwarded", f"for={node}")]
    result = client_address(headers_of(pairs), "10.0.0.1", in_ten)
    assert result in {normal_ip(client), "10.0.0.1"}
    if not same_line and '"' not in forged or same_line and forged.count('"') == 0:
        assert result == normal_ip(client)


@given(st.lists(ips, min_size=1, max_size=8), ips, st.sampled_from(NAMES[1:]))
def test_a_chain_of_addresses_gives_the_right_most_untrusted(chain, peer, name):
    assume(in_ten(peer))
    expected = peer
    for hop in reversed(chain):
        expected = normal_ip(hop)
        if not in_ten(expected):
            break
    headers = headers_of([(name, ", ".join(chain))])
    assert client_address(headers, peer, in_ten) == expected
    forwarded = ", ".join(f'for="[{hop}]"' if ":" in hop else f"for={hop}" for hop in chain)
    assert client_address(headers_of([("Forwarded", forwarded)]), peer, in_ten) == expected


@given(st.lists(st.tuples(st.sampled_from(NAMES), near_text), max_size=4),
       st.lists(st.tuples(st.sampled_from(NAMES), near_text), max_size=3), st.sampled_from(NAMES), ips)
def test_a_named_source_ignores_the_other_headers(pairs, others, name, peer):
    source = Source(name)
    kept = [(key, value) for key, value in pairs if key == name]
    noise = [(key, value) for key, value in others if key != name]
    assert client_address(headers_of(kept + noise), peer, in_ten, source) == \
        client_address(headers_of(kept), peer, in_ten, source)
