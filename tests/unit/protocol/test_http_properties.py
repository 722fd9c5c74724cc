"""Properties of the request head reader, the static path rules and the origin check.

The reader gets bytes as TCP delivers them, so the properties feed the same
bytes in random chunks and compare with one chunk. For an input of at most
`max_header_bytes` + 1 bytes, no split changes whether it gives a head, needs
more or fails, nor the head (method, target, version, headers), the bytes kept
after an upgrade head, or an error's status, with one exception: a head with
too many header lines and a syntax error just after the last allowed one may
get 431 or 400, as the count is noticed when the next line starts, which llhttp
reports at the end of a read.

Longer inputs are counted as they arrive, so memory stays bounded, and a split
may turn any outcome into a size error: 414 or 431, by whether the request line
had ended by then. A size error stays one under every split, a head whose
content (what llhttp keeps plus the syntax every head has) is over the limit is
one under every split, and a head of at most `max_header_bytes` bytes and
`max_headers` lines is accepted under every split.
"""
import posixpath
import string
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from websockify.errors import HttpError
from websockify.protocol.http import SINGLE_HEADERS, RequestReader, origin_allowed, static_path

from .inputs import chunkings

READER_STATUSES = {400, 414, 431, 505}
SIZE_STATUSES = {414, 431}


def run(chunks, limits):
    """Feed chunks as they would arrive: ('head', ..., leftover, unfed bytes), ('error', status) or ('more',)."""
    reader = RequestReader(*limits)
    for index, chunk in enumerate(chunks):
        try:
            head = reader.feed(chunk)
        except HttpError as exc:
            assert exc.status in READER_STATUSES, exc
            return ("error", exc.status)
        if head is not None:
            items = tuple(head.headers.raw_items())
            return ("head", head.method, head.target, head.version, items, reader.leftover,
                    b"".join(chunks[index + 1:]))
    return ("more",)


def head_end(data):
    start = len(data) - len(data.lstrip(b"\r\n"))  # llhttp skips blank lines before a request
    end = data.find(b"\r\n\r\n", start)
    assert end >= 0, "a head ends with an empty line"
    return end + 4


# -- request heads that llhttp accepts ----------------------------------------

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# Names llhttp gives a meaning of its own, or that must appear once.
SPECIAL = SINGLE_HEADERS | {"connection", "proxy-connection", "upgrade", "content-length", "transfer-encoding"}
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"

header_names = st.text(TCHAR, min_size=1, max_size=10).filter(lambda n: n.lower() not in SPECIAL)
# Visible ASCII and obs-text, with inner blanks: llhttp keeps a value but its leading blanks.
header_values = st.builds(
    lambda first, rest: (first + rest) if first else "",
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=1),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
            | st.just("\t"), max_size=12))
targets = st.builds(
    lambda path, query: "/" + path + (("?" + query) if query is not None else ""),
    st.text(PCHAR + "/", max_size=20) | st.text(max_size=8).map(lambda t: quote(t, safe="/")),
    st.none() | st.text(PCHAR + "/?", max_size=10))
separators = st.sampled_from([": ", ":", ":\t", ":  "])


@st.composite
def requests(draw, upgrade=None, names=header_names):
    """(bytes of a valid head, method, target, version, headers, is an upgrade)."""
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "MKCALENDAR"]))
    target = draw(targets)
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    headers = draw(st.lists(st.tuples(names, header_values), max_size=8))
    if upgrade is None:
        upgrade = draw(st.booleans())
    if upgrade:
        method = "GET"
        at = draw(st.integers(0, len(headers)))
        headers[at:at] = [("Upgrade", "websocket"), ("Connection", draw(st.sampled_from(
            ["Upgrade", "upgrade", "keep-alive, Upgrade"])))]
    lines = [f"{method} {target} {version}"]
    lines += [f"{name}{draw(separators)}{value}" for name, value in headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return raw, method, target, version, headers, upgrade


# Pieces of requests, good and bad, for inputs llhttp mostly refuses somewhere.
PIECES = [b"GET", b"HEAD", b"POST", b"CONNECT", b"get", b" ", b"\t", b"/", b"/a", b"?q", b"%2e", b"#", b"*",
          b"http://h/x", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b"\r\n", b"\n",
          b"\r", b":", b": ", b"Host", b"host", b"Upgrade", b"websocket", b"Connection", b"upgrade",
          b"Content-Length", b"0", b"5", b"-1", b"Transfer-Encoding", b"chunked", b"Origin", b"Cookie",
          b"X-A", b"\x00", b"\x7f", b"\x80", b"\xff", b"\xc3\xa9", b"\r\n\r\n", b"a" * 40]


@st.composite
def mutated(draw):
    raw = draw(requests())[0]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        if draw(st.booleans()):
            raw = raw[:at] + draw(st.sampled_from(PIECES) | st.binary(min_size=1, max_size=3)) + raw[at:]
        else:
            raw = raw[:at] + raw[at + draw(st.integers(1, 8)):]
    return raw


http_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(PIECES) | st.binary(max_size=3), max_size=30).map(b"".join),
    requests().map(lambda r: r[0]),
    st.tuples(requests(upgrade=True), st.binary(max_size=20)).map(lambda t: t[0][0] + t[1]),
    mutated(),
)
limits = st.tuples(st.integers(1, 400) | st.just(16 * 1024), st.integers(0, 6) | st.just(100))


def agree(whole, parts, data, limits):
    if parts[:5] == whole[:5]:
        return True
    # The header-line limit is noticed when the next line starts, where a syntax
    # error may be noticed first: either status is right for such a head.
    unlimited = run([data], (limits[0], 1 << 30))
    return whole[0] == parts[0] == "error" and {whole[1], parts[1]} == {400, 431} and unlimited == ("error", 400)


@given(http_bytes, limits, st.data())
@example(b"GET / HTTP/1.1\r\nX: \x80\r\n\r\n", (16 * 1024, 100), None)
def test_any_bytes_in_any_chunks_give_a_head_more_or_a_known_status(data, limits, draw):
    whole = run([data] if data else [], limits)
    chunks = draw.draw(chunkings(data)) if draw is not None else [data]
    parts = run(chunks, limits)
    if len(data) <= limits[0] + 1:
        assert agree(whole, parts, data, limits), (whole, parts)
    else:
        assert agree(whole, parts, data, limits) or parts[0] == "error" and parts[1] in SIZE_STATUSES, \
            (whole, parts)
        if whole[0] == "error" and run([data], (limits[0], 1 << 30))[1:] in ((414,), (431,)):
            assert parts[0] == "error" and parts[1] in SIZE_STATUSES, (whole, parts)  # a size error stays one
    if whole[0] == "head":
        tail = data[head_end(data):]
        assert whole[5] in (b"", tail)
    if parts[0] == "head":
        leftover, unfed = parts[5], parts[6]
        if whole[5] != b"" or tail == b"":  # an upgrade: the bytes after the head are the session's
            assert leftover + unfed == tail
        else:
            assert leftover == b""


@given(requests(), st.binary(max_size=40), st.data())
def test_a_valid_head_round_trips_in_any_chunks(request, tail, draw):
    raw, method, target, version, headers, upgrade = request
    result = run(draw.draw(chunkings(raw + tail)), (16 * 1024, 100))
    assert result[:5] == ("head", method, target, version, tuple(headers))
    leftover, unfed = result[5], result[6]
    if upgrade:
        assert leftover + unfed == tail
    else:
        assert leftover == b""


@given(requests(), st.integers(1, 600), st.integers(0, 10), st.data())
def test_the_limits_hold_for_any_chunks(request, max_bytes, max_headers, draw):
    raw, method, target, _, headers, _ = request
    result = run(draw.draw(chunkings(raw)), (max_bytes, max_headers))
    # What llhttp keeps of a head plus the syntax every head has: the bytes
    # without optional blanks.
    content = len(method) + len(target) + 12 + sum(len(n) + len(v) + 3 for n, v in headers) + 2
    if content > max_bytes:
        assert result[0] == "error" and result[1] in SIZE_STATUSES
    elif len(headers) > max_headers and len(raw) <= max_bytes:
        assert result == ("error", 431)
    elif len(raw) <= max_bytes:
        assert result[0] == "head"


@given(requests(upgrade=False), st.sampled_from(sorted(SINGLE_HEADERS)), st.data())
def test_a_second_copy_of_a_single_header_is_400(request, name, draw):
    raw, *_ = request
    spelled = [draw.draw(st.sampled_from([name, name.upper(), name.title()])) for _ in range(2)]
    value = "0" if name == "content-length" else "chunked" if name == "transfer-encoding" else "v"
    end = raw.index(b"\r\n") + 2
    extra = "".join(f"{n}: {value}\r\n" for n in spelled).encode()
    assert run(draw.draw(chunkings(raw[:end] + extra + raw[end:])), (16 * 1024, 100)) == ("error", 400)


# -- static files ---------------------------------------------------------------

ROOT = "/srv/web"
path_pieces = st.one_of(
    st.sampled_from(["", ".", "..", "...", ".git", "%2e", "%2E%2e", "%2e.", "%2f", "%2F", "%5c", "%5C", "%00",
                     "\\", "..\\..", "%252e", "%c0%ae", "%ff", "a", "index.html", "~", "%", "%2", "?", "#",
                     "\x00", "\u2215", "\uff0e\uff0e", "é", "%C3%A9"]),
    st.text(max_size=6),
    st.binary(max_size=4).map(lambda b: quote(b, safe="")),
)


@given(st.lists(path_pieces, max_size=8).map("/".join), st.booleans())
def test_no_static_path_leaves_the_root(path, absolute):
    target = ("/" if absolute else "") + path
    try:
        result = static_path(target)
    except HttpError as exc:
        assert exc.status in (400, 404)
        return
    assert target.startswith("/")
    for segment in result.segments:
        assert segment and not segment.startswith(".")
        assert not any(c in segment for c in "/\\\x00")
    resolved = posixpath.normpath(posixpath.join(ROOT, *result.segments))
    assert resolved == ROOT or resolved.startswith(ROOT + "/")
    assert len(resolved.split("/")) == len(ROOT.split("/")) + len(result.segments)


safe_segments = st.text(st.characters(exclude_characters="/\\\x00", exclude_categories=["Cs"]),
                        min_size=1, max_size=8).filter(lambda s: not s.startswith("."))


@given(st.lists(safe_segments, max_size=5), st.booleans(), st.sampled_from(["", "?a=/../", "#/.."]))
def test_safe_segments_round_trip(segments, slash, suffix):
    path = "/" + "/".join(quote(s, safe="") for s in segments) + ("/" if slash and segments else "")
    result = static_path(path + suffix)
    assert result.segments == tuple(segments)
    assert result.directory_form == (slash or not segments)
    assert result.url_path == path


# -- the same-origin rule ---------------------------------------------------------

DEFAULT_PORT = {"http": 80, "ws": 80, "https": 443, "wss": 443}
hosts = st.sampled_from(["example.com", "h", "127.0.0.1", "[::1]", "xn--bcher-kva.example"])
schemes = st.sampled_from(sorted(DEFAULT_PORT))
ports = st.none() | st.sampled_from([80, 443, 6080, 8080])


def random_case(draw, text):
    return "".join(c.upper() if draw(st.booleans()) else c for c in text)


def authority(host, port):
    return host if port is None else f"{host}:{port}"


@given(schemes, hosts, ports, hosts, ports, st.data())
def test_same_origin_is_host_and_port_in_any_case_with_default_ports(scheme, o_host, o_port, h_host, h_port,
                                                                      draw):
    origin = random_case(draw.draw, scheme) + "://" + random_case(draw.draw, authority(o_host, o_port))
    host = random_case(draw.draw, authority(h_host, h_port))
    # The Host header has no scheme: its default port is the one of the Origin's kind (TLS or not).
    default = DEFAULT_PORT[scheme]
    expected = o_host == h_host and (o_port or default) == (h_port or default)
    assert origin_allowed(origin, host, None, same_origin=True) is expected


@given(st.text(max_size=30), st.none() | st.text(max_size=20))
def test_origin_rule_never_fails_and_only_allows_a_scheme_with_its_host(origin, host):
    allowed = origin_allowed(origin, host, None, same_origin=True)
    if allowed:
        assert host is not None and "://" in origin
    assert origin_allowed(None, host, None, same_origin=True)
    assert origin_allowed(origin, host, None, same_origin=False)
    assert origin_allowed(origin, host, ("*",), same_origin=True)


@given(st.text(max_size=20), st.lists(st.text(max_size=20).map(str.lower), max_size=3), st.booleans())
def test_an_allow_list_is_exact_but_case_blind(origin, listed, same_origin):
    assert origin_allowed(origin, "h", tuple(listed), same_origin) is ("*" in listed or origin.lower() in listed)
    assert origin_allowed(origin, "h", (*listed, origin.lower()), same_origin)


# -- regressions ------------------------------------------------------------------

def test_header_values_above_0x7f_are_read_as_latin1():
    head = RequestReader().feed(b"GET / HTTP/1.1\r\nX: caf\xe9 \x80\xff\r\n\r\n")
    assert head is not None and head.headers["X"] == "caf\xe9 \x80\xff"


def test_a_head_of_exactly_the_limit_passes_in_one_read():
    raw = b"GET / HTTP/1.1\r\nA:1\r\nB:2\r\nC:3\r\n\r\n"
    assert RequestReader(max_header_bytes=len(raw)).feed(raw) is not None
    with pytest.raises(HttpError) as info:
        RequestReader(max_header_bytes=len(raw) - 1).feed(raw)
    assert info.value.status == 431
