"""Readiness reports: which datagrams from rebind.so websockify accepts."""
import pytest

from websockify.config import TcpAddress
from websockify.wrap.readiness import parse_report


@pytest.mark.parametrize("data,expected", [
    (b"127.0.0.1 5901", TcpAddress("127.0.0.1", 5901)),
    (b"::1 40000", TcpAddress("::1", 40000)),
    (b"127.0.0.1 5901\n", TcpAddress("127.0.0.1", 5901)),
])
def test_a_loopback_report_is_an_address(data, expected):
    assert parse_report(data) == expected


@pytest.mark.parametrize("data", [
    b"", b"127.0.0.1", b"127.0.0.1 5901 extra", b"10.0.0.1 5901", b"0.0.0.0 5901", b"127.0.0.1 0",
    b"127.0.0.1 65536", b"127.0.0.1 -1", b"localhost 5901", b"\xff\xfe 1", b"127.0.0.1 5901x",
])
def test_anything_else_is_ignored(data):
    assert parse_report(data) is None
