"""--allowed-hosts: parsing the list, and which Host headers it lets in."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websockify.access_lists import parse_hosts
from websockify.errors import ConfigError
from websockify.protocol.http import host_allowed


def test_parsing_normalises_names_and_addresses():
    assert parse_hosts("VNC.Example.com., 192.168.1.5 [::1],.lan") == ("vnc.example.com", "192.168.1.5", "::1", ".lan")
    assert parse_hosts("*") == ("*",)


@pytest.mark.parametrize("text", ["", " , ", "vnc.example.com:6080", "http://vnc", "a b/c", "-bad.example", "a..b"])
def test_parsing_refuses_what_is_not_a_host(text):
    with pytest.raises(ConfigError, match="--allowed-hosts"):
        parse_hosts(text)


ALLOWED = parse_hosts("vnc.example.com .lan 192.168.1.5 ::1")


@pytest.mark.parametrize("host,expected", [
    ("vnc.example.com", True),
    ("VNC.EXAMPLE.COM:6080", True),
    ("vnc.example.com.:443", True),
    ("lan", True),
    ("pc7.office.lan:6080", True),
    ("192.168.1.5:6080", True),
    ("[::1]:6080", True),
    ("[0:0::1]", True),
    ("attacker.example", False),  # DNS rebinding: the attacker's name, resolved to us
    ("vnc.example.com.attacker.example", False),
    ("evillan", False),
    ("192.168.1.6", False),
    ("", False),
    (None, False),
    ("[::1", False),
    ("a:b:c", False),
])
def test_which_hosts_are_let_in(host, expected):
    assert host_allowed(host, ALLOWED) is expected


@given(st.one_of(st.none(), st.text()))
def test_any_host_with_a_star_and_never_an_error(host):
    assert host_allowed(host, ("*",))
    assert host_allowed(host, ALLOWED) in (True, False)
