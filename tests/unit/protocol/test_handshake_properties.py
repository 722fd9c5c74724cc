"""Properties of the opening handshake, for any set of request headers."""
import base64

from hypothesis import given
from hypothesis import strategies as st
from websockets.datastructures import Headers

from websockify.errors import HttpError
from websockify.protocol.handshake import perform_handshake
from websockify.protocol.http import RequestReader

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
VALID = [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
         ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")]
NAMES = ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
         "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Origin", "X-Other"]
GOOD_VALUES = ["websocket", "WebSocket", "Upgrade", "keep-alive, Upgrade", "upgrade,", KEY, "13", "8", "",
               "binary", "base64", "chat, base64", "binary,base64", "a b", ",", "permessage-deflate",
               "permessage-deflate; client_max_window_bits", "x; y=\"z\"", "http://h", "null"]
# What websockets' Headers take: HTAB, visible ASCII, space and Latin-1 (obs-text).
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
                      | st.just("\t"), max_size=30)
values = st.sampled_from(GOOD_VALUES) | header_text | st.binary(min_size=16, max_size=16).map(
    lambda b: base64.b64encode(b).decode())
header_sets = st.builds(
    lambda keep, extra: [h for h, k in zip(VALID, keep) if k] + extra,
    st.lists(st.booleans(), min_size=len(VALID), max_size=len(VALID)),
    st.lists(st.tuples(st.sampled_from(NAMES) | st.text("abcXYZ-", min_size=1, max_size=8), values),
             max_size=6))


def status_of(response):
    return int(response.split(b" ", 2)[1])


def check(result):
    assert result.accepted == result.response.startswith(b"HTTP/1.1 101 ")
    if result.accepted:
        assert result.error is None
        assert result.subprotocol in (None, "binary", "base64")
    else:
        # 426 for a missing upgrade, 400 for the rest; a 500 would be a crash inside websockets.
        assert status_of(result.response) in (400, 426), result.response
        assert result.error


@given(header_sets, st.text(max_size=20), st.integers(125, 1 << 20))
def test_any_headers_give_101_or_a_client_error(items, path, max_bytes):
    check(perform_handshake("/" + path, Headers(items), max_bytes))


@given(st.lists(st.sampled_from(NAMES), max_size=4),
       st.lists(st.binary(max_size=12) | st.sampled_from([b"\x80\xff", b"base64", b"binary", b"\xb2"]),
                max_size=4))
def test_headers_from_the_wire_give_101_or_a_client_error(names, raw_values):
    raw = b"GET / HTTP/1.1\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in VALID[1:3])
    raw += b"".join(n.encode() + b": " + v + b"\r\n" for n, v in zip(names, raw_values)) + b"\r\n"
    try:
        head = RequestReader().feed(raw)
    except HttpError:
        return
    assert head is not None
    check(perform_handshake(head.target, head.headers, 1 << 20))


protocol_names = st.sampled_from(["binary", "base64", "chat", "BINARY", "Base64", "v1.x", "b"])


@given(st.lists(st.lists(protocol_names, min_size=1, max_size=3), max_size=3),
       st.sampled_from([", ", ",", " , "]))
def test_the_subprotocol_is_the_clients_first_known_one(groups, comma):
    items = VALID + [("Sec-WebSocket-Protocol", comma.join(group)) for group in groups]
    result = perform_handshake("/", Headers(items), 1 << 20)
    offered = [name for group in groups for name in group]
    known = [name for name in offered if name in ("binary", "base64")]
    if not offered:
        assert result.accepted and result.subprotocol is None
        assert b"Sec-WebSocket-Protocol" not in result.response
    elif known:
        assert result.accepted and result.subprotocol == known[0]
        assert f"\r\nSec-WebSocket-Protocol: {known[0]}\r\n".encode() in result.response
    else:
        assert not result.accepted and status_of(result.response) == 400


connection_values = st.sampled_from(["Upgrade", "upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade, keep-alive",
                                     "keep-alive,Upgrade", "foo ,  upgrade", ",upgrade", "upgrade,", "close, upgrade",
                                     "Upgrade\t", "keep-alive", "upgrade2", "x-upgrade"])
upgrade_values = st.sampled_from(["websocket", "WebSocket", "websocket, h2c", "h2c, websocket", "websocket\t",
                                  "websocket/13", "h2c"])


@given(st.lists(connection_values, min_size=1, max_size=2), st.lists(upgrade_values, min_size=1, max_size=1),
       st.binary(max_size=20))
def test_an_accepted_upgrade_keeps_the_bytes_after_its_head(connections, upgrades, tail):
    # The reader keeps what follows a head only when llhttp sees an upgrade; a
    # head websockets accepts without one would lose the client's first frames.
    lines = [f"Connection: {c}" for c in connections] + [f"Upgrade: {u}" for u in upgrades]
    lines += [f"{n}: {v}" for n, v in VALID if n not in ("Connection", "Upgrade")]
    raw = ("GET / HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode()
    reader = RequestReader()
    head = reader.feed(raw + tail)
    assert head is not None
    if perform_handshake(head.target, head.headers, 1 << 20).accepted:
        assert reader.leftover == tail
