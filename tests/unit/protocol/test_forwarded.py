"""The real client behind trusted proxies: Forwarded, X-Forwarded-For, X-Real-IP."""
from __future__ import annotations

import pytest
from websockets.datastructures import Headers

from websockify.access_lists import parse_trusted_proxies, trusts
from websockify.protocol.forwarded import MAX_HOPS, Source, client_address

PROXIES = parse_trusted_proxies("10.0.0.0/8 127.0.0.1 2001:db8:ffff::/48")


def trusted(ip: str) -> bool:
    return trusts(PROXIES, ip)


def client(peer: str, *headers: tuple[str, str], source: Source = Source.AUTO) -> str:
    return client_address(Headers(list(headers)), peer, trusted, source)


def xff(value: str) -> tuple[str, str]:
    return ("X-Forwarded-For", value)


def fwd(value: str) -> tuple[str, str]:
    return ("Forwarded", value)


# -- whom we believe --------------------------------------------------------------

def test_an_untrusted_peer_is_the_client_whatever_it_sends():
    assert client("198.51.100.7", xff("192.0.2.1"), fwd("for=192.0.2.2"), ("X-Real-IP", "192.0.2.3")) \
        == "198.51.100.7"


def test_a_trusted_peer_without_headers_is_the_client():
    assert client("10.0.0.1") == "10.0.0.1"
    assert client("10.0.0.1", xff(""), ("X-Real-IP", " ")) == "10.0.0.1"


def test_the_right_most_untrusted_address_wins():
    assert client("10.0.0.1", xff("192.0.2.9, 198.51.100.7, 10.0.0.2")) == "198.51.100.7"


@pytest.mark.parametrize("forged", ["1.1.1.1", "10.0.0.5", "127.0.0.1", "unknown", "garbage", "1.1.1.1, 10.0.0.9"])
def test_a_spoofed_left_part_never_wins(forged):
    # The client sent X-Forwarded-For: <forged>; our proxy appended what it saw.
    assert client("127.0.0.1", xff(f"{forged}, 198.51.100.7")) == "198.51.100.7"
    assert client("127.0.0.1", fwd(f'for="{forged}", for=198.51.100.7')) == "198.51.100.7"


def test_every_hop_trusted_gives_the_left_most():
    assert client("10.0.0.1", xff("10.0.0.7, 10.0.0.8")) == "10.0.0.7"


def test_a_malformed_hop_stops_the_walk_at_the_last_good_address():
    assert client("10.0.0.1", xff("198.51.100.7, nonsense, 10.0.0.2")) == "10.0.0.2"
    assert client("10.0.0.1", xff("198.51.100.7, 1.2.3.4.5")) == "10.0.0.1"
    assert client("10.0.0.1", xff("198.51.100.7, 1.2.3.4:99999")) == "10.0.0.1"


def test_repeated_headers_read_in_order():
    assert client("10.0.0.1", xff("192.0.2.9"), xff("198.51.100.7, 10.0.0.3")) == "198.51.100.7"
    assert client("10.0.0.1", xff("192.0.2.9, 10.0.0.2"), xff("10.0.0.3")) == "192.0.2.9"


def test_forwarded_before_x_forwarded_for_before_x_real_ip():
    assert client("10.0.0.1", xff("192.0.2.2"), fwd("for=192.0.2.1"), ("X-Real-IP", "192.0.2.3")) == "192.0.2.1"
    assert client("10.0.0.1", xff("192.0.2.2"), ("X-Real-IP", "192.0.2.3")) == "192.0.2.2"
    assert client("10.0.0.1", ("X-Real-IP", "192.0.2.3")) == "192.0.2.3"
    # A Forwarded header that names no `for` (a proxy adding only proto=) is passed over.
    assert client("10.0.0.1", fwd("proto=https;host=example.com"), xff("192.0.2.2")) == "192.0.2.2"


def test_a_broken_forwarded_header_is_not_passed_over():
    # Else a client could send `Forwarded: for="` to make us read its own X-Forwarded-For.
    assert client("10.0.0.1", fwd('for="'), xff("192.0.2.2")) == "10.0.0.1"
    assert client("10.0.0.1", fwd("for=192.0.2.1, proto=https"), xff("192.0.2.2")) == "10.0.0.1"


def test_the_named_source_alone_is_read():
    # The proxy sets X-Forwarded-For and passes the client's own Forwarded through.
    spoofed = (fwd("for=192.0.2.66"), xff("192.0.2.66, 198.51.100.7"), ("X-Real-IP", "198.51.100.8"))
    assert client("10.0.0.1", *spoofed) == "192.0.2.66"  # why AUTO is the riskier choice
    assert client("10.0.0.1", *spoofed, source=Source.X_FORWARDED_FOR) == "198.51.100.7"
    assert client("10.0.0.1", *spoofed, source=Source.X_REAL_IP) == "198.51.100.8"
    assert client("10.0.0.1", *spoofed, source=Source.FORWARDED) == "192.0.2.66"
    assert client("10.0.0.1", xff("198.51.100.7"), source=Source.FORWARDED) == "10.0.0.1"
    assert client("10.0.0.1", fwd("proto=https"), xff("198.51.100.7"), source=Source.FORWARDED) == "10.0.0.1"
    assert client("198.51.100.9", *spoofed, source=Source.X_FORWARDED_FOR) == "198.51.100.9"


@pytest.mark.parametrize("item,address", [
    ("192.0.2.1", "192.0.2.1"),
    ("192.0.2.1:4711", "192.0.2.1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
    ("fe80::1%eth0", "fe80::1"),
])
def test_x_forwarded_for_items(item, address):
    assert client("10.0.0.1", xff(f"{item},10.0.0.2")) == address


@pytest.mark.parametrize("item", ["[192.0.2.1]", "[2001:db8::1", "[2001:db8::1]x", "2001:db8::1]:80",
                                  "192.0.2.1:", "192.0.2.1:http", "192.0.2.1%eth0", "localhost", "_hidden",
                                  "unknown", "0x7f.1", "1.2.3", "19\u00b2.0.2.1", "[::\u00b9]", "[]", "\"192.0.2.1\""])
def test_x_forwarded_for_items_we_cannot_read(item):
    assert client("10.0.0.1", xff(f"198.51.100.7, {item}, 10.0.0.2")) == "10.0.0.2"


def test_ipv4_mapped_peers_and_results_are_ipv4():
    assert client("::ffff:10.0.0.1", xff("::ffff:198.51.100.7")) == "198.51.100.7"
    assert client("::ffff:198.51.100.7", xff("192.0.2.1")) == "198.51.100.7"


def test_a_peer_that_is_no_address_is_kept_as_it_is():
    assert client_address(Headers([xff("192.0.2.1")]), "", trusted) == ""
    assert client_address(Headers([xff("192.0.2.1")]), "/run/ws.sock", lambda ip: True) == "192.0.2.1"


def test_the_walk_stops_after_max_hops():
    many = ", ".join(["198.51.100.7"] + ["10.0.0.9"] * (MAX_HOPS + 5) + ["10.0.0.8"])
    assert client("10.0.0.1", xff(many)) == "10.0.0.9"


def test_trusted_is_asked_about_normalized_addresses_only():
    asked = []

    def record(ip: str) -> bool:
        asked.append(ip)
        return True

    client_address(Headers([xff("[2001:DB8::1]:80, 192.0.2.1:5")]), "::ffff:10.0.0.1", record)
    assert asked == ["10.0.0.1", "192.0.2.1", "2001:db8::1"]


# -- RFC 7239 ---------------------------------------------------------------------

@pytest.mark.parametrize("value,address", [
    # The examples of §4 and §7.1.
    ('for="_gazonk"', "10.0.0.1"),
    ('For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
    ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
    ("for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),
    ("for=192.0.2.43,for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com", "198.51.100.17"),
    ('for=192.0.2.43, for="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
    ("for=unknown", "10.0.0.1"),
    ('for="192.0.2.43:_hidden"', "192.0.2.43"),  # an obfuscated port: the address still counts
    ('for="192.0.2.43:47011"', "192.0.2.43"),
    # Quoted strings with escapes, and separators inside quotes.
    (r'for="192.0.2.4\3"', "192.0.2.43"),
    ('host="a,b;c";for=192.0.2.43', "192.0.2.43"),
    # Lenient: unbracketed IPv6, brackets without quotes, spaces around ; and ,.
    ("for=2001:db8::5", "2001:db8::5"),
    ("for=[2001:db8::5]:80", "2001:db8::5"),
    ("for=192.0.2.43 ; proto=https ,  ", "192.0.2.43"),
    ("for=192.0.2.43,,, ", "192.0.2.43"),
])
def test_rfc7239(value, address):
    assert client("10.0.0.1", fwd(value)) == address


@pytest.mark.parametrize("last", [
    "for=_gazonk", "for=unknown", "for=", 'for=""', "for=192.0.2.43;for=192.0.2.44",
    "proto=http", "for", "for 192.0.2.43", "for =192.0.2.43", "=192.0.2.43", 'for="192.0.2.43"x',
    "for=192.0.2.43:99999", "for=192.0.2.43:_", "for=192.0.2.43:_a b", "for=[192.0.2.43]",
    'for="[2001:db8::1]:_x:1"', "for=192.0.2.43 x",
])
def test_a_forwarded_element_we_cannot_read_ends_the_walk(last):
    assert client("10.0.0.1", fwd(f"for=198.51.100.7, for=10.0.0.2, {last}")) == "10.0.0.1"
    assert client("10.0.0.1", fwd(f"for=198.51.100.7, {last}, for=10.0.0.2")) == "10.0.0.2"


def test_a_quote_left_open_swallows_the_rest_of_its_header():
    assert client("10.0.0.1", fwd('for=198.51.100.7, for="192.0.2.43, for=10.0.0.2')) == "10.0.0.1"


def test_repeated_forwarded_headers_read_in_order():
    assert client("10.0.0.1", fwd("for=192.0.2.9"), fwd("for=198.51.100.7, for=10.0.0.3")) == "198.51.100.7"
    # A quote left open in one header does not swallow the next one.
    assert client("10.0.0.1", fwd('for="192.0.2.9'), fwd("for=198.51.100.7")) == "198.51.100.7"
