import pytest

from websockify.protocol.http import origin_allowed


@pytest.mark.parametrize("origin,host,allowed,same_origin,expected", [
    (None, "h:1", None, True, True),                                  # not a browser
    ("http://h:1", "h:1", None, True, True),
    ("https://H:1", "h:1", None, True, True),                          # case and scheme ignored
    ("https://h", "h:443", None, True, True),                          # default port
    ("http://h", "h:80", None, True, True),
    ("https://h", "h:80", None, True, False),                          # https's default is 443
    ("http://evil", "h:1", None, True, False),
    ("null", "h:1", None, True, False),                                # sandboxed page
    ("http://h:1", None, None, True, False),                           # no Host to compare with
    ("http://evil", "h:1", None, False, True),                         # no --web: any
    ("https://a.example", "h", ("https://a.example",), True, True),
    ("https://A.example", "h", ("https://a.example",), True, True),
    ("http://a.example", "h", ("https://a.example",), False, False),
    ("http://x", "h", ("*",), True, True),
])
def test_origin_allowed(origin, host, allowed, same_origin, expected):
    assert origin_allowed(origin, host, allowed, same_origin) is expected
