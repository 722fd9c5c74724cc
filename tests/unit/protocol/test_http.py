"""HTTP heads, static paths, plain responses and the origin check: protocol/http.py."""
import pytest

from websockify.errors import HttpError
from websockify.protocol.http import RequestReader, content_type, error_response, origin_allowed, static_path


def test_head_in_pieces_and_leftover():
    reader = RequestReader()
    assert reader.feed(b"GET /x?a=1 HTTP/1.1\r\nHo") is None
    head = reader.feed(b"st: h\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\nFRAME")
    assert head is not None
    assert (head.method, head.target, head.version) == ("GET", "/x?a=1", "HTTP/1.1")
    assert head.headers["Host"] == "h" and head.wants_websocket
    assert reader.leftover == b"FRAME"


@pytest.mark.parametrize("data,status", [
    (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
    (b"get / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/9.9\r\n\r\n", 505),  # well-formed, unknown to llhttp
    (b"GET / HTTP/1.2\r\n\r\n", 505),
    (b"GET /\r\n\r\n", 505),  # HTTP/0.9
    (b"GET / HTTP/x.1\r\n\r\n", 400),
    (b"GET / HTTPS/1.1\r\n\r\n", 400),
    (b"BREW /pot HTTP/1.1\r\n\r\n", 400),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),  # the HTTP/2 preface
    (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
    (b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 17000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nOrigin: a\r\nOrigin: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nIf-None-Match: a\r\nIf-None-Match: b\r\n\r\n", 400),
])
def test_bad_heads(data, status):
    with pytest.raises(HttpError) as info:
        RequestReader().feed(data)
    assert info.value.status == status


@pytest.mark.parametrize("target,segments,directory", [
    ("/", (), True),
    ("/a/b.html", ("a", "b.html"), False),
    ("/a//./b/", ("a", "b"), True),
    ("/a%20b?q=/../", ("a b",), False),
])
def test_static_path(target, segments, directory):
    path = static_path(target)
    assert path.segments == segments and path.directory_form == directory


@pytest.mark.parametrize("target", ["/..", "/a/../b", "/%2e%2e/x", "/a%2fb", "/a%5cb", "/a%00", "/.git/config"])
def test_static_path_refuses_escapes(target):
    with pytest.raises(HttpError) as info:
        static_path(target)
    assert info.value.status == 404


@pytest.mark.parametrize("target", ["http://h/x", "*", "x", "/%ff"])
def test_static_path_refuses_non_paths(target):
    with pytest.raises(HttpError) as info:
        static_path(target)
    assert info.value.status == 400


def test_content_types():
    assert content_type("a.wasm") == "application/wasm"
    assert content_type("a.PNG") == "image/png"
    assert content_type("noext") == "application/octet-stream"


def test_error_response_head_only():
    with_body = error_response(404, "nope")
    head_only = error_response(404, "nope", include_body=False)
    assert with_body.startswith(head_only) and with_body.endswith(b"nope\n") and head_only.endswith(b"\r\n\r\n")


def test_auth_headers_drop_forged_ssl_headers_in_any_case():
    from websockets.datastructures import Headers

    from websockify.protocol.http import auth_headers

    sent = Headers([("Host", "h"), ("ssl_client_s_dn_cn", "alice"), ("SSL_Client_S_DN_CN", "bob"), ("X-A", "1")])
    assert auth_headers(sent, None).get("SSL_CLIENT_S_DN_CN") is None
    clean = auth_headers(sent, "carol")
    assert clean.get_all("ssl_client_s_dn_cn") == ["carol"] and clean["X-A"] == "1"


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
