"""--trusted-proxies: parsing the list, and which addresses it trusts.

(--allowed-hosts is tested beside the Host check, in protocol/test_allowed_hosts.py.)
"""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websockify.access_lists import (
    DEFAULT_TRUSTED_PROXIES,
    normal_ip,
    parse_trusted_proxies,
    trusts,
)
from websockify.errors import ConfigError


def test_parsing_takes_networks_and_bare_addresses():
    assert parse_trusted_proxies("10.0.0.0/8, 192.0.2.7 [2001:db8::1],fd00::/8\n172.16.0.0/12") == (
        ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("192.0.2.7/32"),
        ipaddress.IPv6Network("2001:db8::1/128"), ipaddress.IPv6Network("fd00::/8"),
        ipaddress.IPv4Network("172.16.0.0/12"))


def test_parsing_drops_repeats_and_maps_ipv4_mapped_networks_to_ipv4():
    assert parse_trusted_proxies("10.0.0.0/8 10.0.0.0/8 ::ffff:192.168.0.0/112 ::ffff:192.0.2.1") == (
        ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("192.168.0.0/16"),
        ipaddress.IPv4Network("192.0.2.1/32"))


def test_the_default_is_loopback():
    assert parse_trusted_proxies(" ".join(DEFAULT_TRUSTED_PROXIES)) == (
        ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv6Network("::1/128"))


@pytest.mark.parametrize("text,message", [
    ("", "at least one"),
    (" , ", "at least one"),
    ("proxy.example.com", "'proxy.example.com' is not an address or network"),
    ("10.0.0.0/33", "is not an address"),
    ("10.0.0.0/-1", "is not an address"),
    ("10.0.0/8", "is not an address"),
    ("010.0.0.0/8", "is not an address"),
    ("fe80::1%eth0", "is not an address"),
    ("10.0.0.1:80", "is not an address"),
    ("10.0.0.1/8", "host bits set; did you mean 10.0.0.0/8"),
    ("\u0661.0.0.0/8", "is not an address"),
])
def test_parsing_refuses_what_is_not_a_network(text, message):
    with pytest.raises(ConfigError, match="--trusted-proxies") as caught:
        parse_trusted_proxies(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


TRUSTED = parse_trusted_proxies("10.0.0.0/8 2001:db8:ffff::/48 ::1")


@pytest.mark.parametrize("ip,expected", [
    ("10.1.2.3", True),
    ("11.0.0.1", False),
    ("::ffff:10.1.2.3", True),  # a dual-stack socket's view of an IPv4 proxy
    ("::ffff:11.0.0.1", False),
    ("2001:db8:ffff:1::9", True),
    ("2001:DB8:FFFF::1", True),
    ("[2001:db8:ffff::1]", True),
    ("fe80::1%eth0", False),
    ("::1", True),
    ("127.0.0.1", False),
    ("", False),  # a Unix socket's peer
    ("/run/websockify.sock", False),
    ("not an address", False),
    ("10.1.2.3%eth0", False),
])
def test_trusts(ip, expected):
    assert trusts(TRUSTED, ip) is expected


def test_trusts_takes_any_sequence():
    assert trusts(list(TRUSTED), "10.0.0.1") and not trusts([], "10.0.0.1")


@pytest.mark.parametrize("text,normal", [
    ("192.0.2.1", "192.0.2.1"), ("::FFFF:192.0.2.1", "192.0.2.1"), ("[2001:DB8::1]", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"), (" 192.0.2.1 ", "192.0.2.1"), ("192.0.2.1:80", None), ("", None),
    ("192.0.2.1%x", None), ("\u00b9.0.0.1", None),
])
def test_normal_ip(text, normal):
    assert normal_ip(text) == normal


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_an_ipv4_address_is_trusted_alike_plain_and_mapped(address, prefix):
    networks = parse_trusted_proxies(str(ipaddress.IPv4Network((address, prefix), strict=False)))
    assert trusts(networks, str(address)) and trusts(networks, f"::ffff:{address}")


@given(st.lists(st.ip_addresses(), min_size=1, max_size=5), st.ip_addresses())
def test_bare_addresses_trust_exactly_themselves(addresses, other):
    networks = parse_trusted_proxies(",".join(str(a) for a in addresses))
    assert all(trusts(networks, str(a)) for a in addresses)
    assert trusts(networks, str(other)) is (normal_ip(str(other)) in {normal_ip(str(a)) for a in addresses})
