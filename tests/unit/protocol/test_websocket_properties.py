"""Properties of an open WebSocket session, for any client byte stream in any chunks.

Bad input never raises out of the session: it ends in a close with a code we
chose (1002, 1007, 1008, 1009) or the one the client's own close frame carried.
For valid frames the target gets exactly the messages' bytes, however the TCP
stream is split and whatever control frames are interleaved.
"""
import base64
import struct

from hypothesis import given
from hypothesis import strategies as st
from websockets.datastructures import Headers

from websockify.protocol.handshake import perform_handshake
from websockify.protocol.websocket import MAX_FRAGMENTS, WebSocketSession

from .inputs import chunkings, receive

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OUR_CODES = {1002, 1007, 1008, 1009}
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
SUBPROTOCOLS = [None, "binary", "base64"]


def session(subprotocol, max_bytes):
    headers = Headers([("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
    if subprotocol:
        headers["Sec-WebSocket-Protocol"] = subprotocol
    result = perform_handshake("/", headers, max_bytes)
    assert result.accepted and result.subprotocol == subprotocol
    return WebSocketSession(result.subprotocol, max_bytes)


def frame(opcode, payload=b"", fin=True, key=b"\x01\x02\x03\x04", rsv=0, length_form=None, length=None):
    """A client frame; `length_form` 7, 16 or 64 forces how the length is written."""
    length = len(payload) if length is None else length
    form = length_form or (7 if length < 126 else 16 if length < 1 << 16 else 64)
    mask_bit = 0x80 if key is not None else 0
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    if form == 7:
        head += bytes([mask_bit | length])
    elif form == 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server_frames(data):
    """(fin, opcode, payload) of the server's unmasked frames."""
    frames, at = [], 0
    while at < len(data):
        first, second = data[at], data[at + 1]
        assert second & 0x80 == 0, "a server never masks"
        length, at = second & 0x7F, at + 2
        if length == 126:
            (length,), at = struct.unpack_from("!H", data, at), at + 2
        elif length == 127:
            (length,), at = struct.unpack_from("!Q", data, at), at + 8
        frames.append((bool(first & 0x80), first & 0x0F, data[at:at + length]))
        at += length
    assert at == len(data)
    return frames


def feed(s, chunks, eof=False):
    """(bytes for the target, bytes for the client, whether the session ended the TCP stream),
    checking the session's promises on the way; each chunk comes as a reused read buffer."""
    target, to_client = [], []
    for chunk in chunks:
        done = s.client_done
        out = receive(s, chunk)
        assert not (done and out), "nothing after the client is done"
        target += out
        while s.backlogged:  # the relay's next turns of the event loop
            target += s.receive_data(b"")
        to_client += s.data_to_send()
    if eof:
        target += s.receive_eof()
        to_client += s.data_to_send()
    ended = b"" in to_client
    if ended:  # the end of the TCP stream comes last
        assert to_client.index(b"") == len(to_client) - 1
    return b"".join(target), b"".join(to_client), ended


# -- valid streams -----------------------------------------------------------------

keys = st.binary(min_size=4, max_size=4)


@st.composite
def messages(draw, subprotocol):
    """(bytes for the target, opcode, payload the client sends)."""
    if subprotocol == "base64":
        data = draw(st.binary(max_size=150))
        return data, draw(st.sampled_from([TEXT, BINARY])), base64.b64encode(data)
    if draw(st.booleans()):
        data = draw(st.text(max_size=60)).encode("utf-8")
        return data, TEXT, data
    data = draw(st.binary(max_size=200))
    return data, BINARY, data


@st.composite
def control_frames(draw):
    return frame(draw(st.sampled_from([PING, PONG])), draw(st.binary(max_size=125)), key=draw(keys))


@st.composite
def valid_streams(draw, subprotocol):
    """(target bytes, ping frames, client bytes): messages in fragments, control frames between."""
    target, pings, stream = b"", [], b""
    for data, opcode, payload in draw(st.lists(messages(subprotocol), max_size=5)):
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        for index, piece in enumerate(pieces):
            if draw(st.integers(0, 3)) == 0:
                control = draw(control_frames())
                pings += [control] if control[0] & 0x0F == PING else []
                stream += control
            stream += frame(opcode if index == 0 else CONT, piece, fin=index == len(pieces) - 1, key=draw(keys))
        target += data
    return target, pings, stream


def unmask(control):
    key, masked = control[2:6], control[6:]
    return bytes(b ^ key[i % 4] for i, b in enumerate(masked))


@given(st.sampled_from(SUBPROTOCOLS).flatmap(lambda sp: st.tuples(st.just(sp), valid_streams(sp))),
       st.none() | st.tuples(st.sampled_from(VALID_CLOSE_CODES), st.text(max_size=20)), st.data())
def test_valid_frames_in_any_chunks_reach_the_target_whole(case, close, draw):
    subprotocol, (expected, pings, stream) = case
    if close is not None:
        code, reason = close
        reason = reason.encode()[:120]
        stream += frame(CLOSE, struct.pack("!H", code) + reason, key=b"\x00\xff\x00\xff")
    s = session(subprotocol, 1 << 20)
    target, to_client, ended = feed(s, draw.draw(chunkings(stream)))
    assert target == expected
    assert ended == (close is not None)
    replies = server_frames(to_client)
    assert [p for _, op, p in replies if op == PONG] == [unmask(ping) for ping in pings]
    if close is None:
        assert s.is_open and not s.client_done and s.close_code is None
    else:
        assert s.client_done and s.close_code == code
        assert replies[-1] == (True, CLOSE, struct.pack("!H", code) + reason)


@given(st.sampled_from(SUBPROTOCOLS), st.lists(st.binary(max_size=300), max_size=5))
def test_target_bytes_reach_the_client_as_one_message_each(subprotocol, sent):
    s = session(subprotocol, 1 << 20)
    for data in sent:
        s.send_payload(data)
    frames = server_frames(b"".join(s.data_to_send()))
    assert all(fin for fin, _, _ in frames)
    if subprotocol == "base64":
        assert [(op, base64.b64decode(p, validate=True)) for _, op, p in frames] == [(TEXT, d) for d in sent]
    else:
        assert [(op, p) for _, op, p in frames] == [(BINARY, d) for d in sent]


# -- bad streams -----------------------------------------------------------------

def bad_utf8():
    return st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x80b", b"\xf4\x90\x80\x80", b"\xc0\xaf"])


def bad_base64():
    return st.binary(max_size=12).filter(lambda b: not _decodes(b)) | st.sampled_from(
        [b"QQ", b"Q===", b"QQ==QQ==", b"a b=", b"QUJD\n"])


def _decodes(text):
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return len(text) % 4 == 0


@st.composite
def bad_frames(draw, subprotocol, max_bytes, open_message):
    """(close code, client bytes) of a frame that must end the session."""
    key = draw(keys)
    kinds = ["unmasked", "rsv", "opcode", "long control", "fragmented control", "non-minimal 16",
             "non-minimal 64", "top bit", "too big", "close code", "close short", "close reason"]
    if open_message:
        kinds += ["nested data"]
    else:
        kinds += ["stray continuation", "too many fragments", "base64" if subprotocol == "base64" else "utf-8"]
    kind = draw(st.sampled_from(kinds))
    if kind == "unmasked":
        return 1002, frame(BINARY, draw(st.binary(max_size=8)), key=None)
    if kind == "rsv":
        return 1002, frame(BINARY, b"x", rsv=draw(st.integers(1, 7)), key=key)
    if kind == "opcode":
        return 1002, frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), b"", key=key)
    if kind == "long control":
        return 1002, frame(PING, b"p" * draw(st.integers(126, 200)), key=key)
    if kind == "fragmented control":
        return 1002, frame(PING, b"", fin=False, key=key)
    if kind == "non-minimal 16":
        return 1002, frame(BINARY, b"", length_form=16, length=draw(st.integers(0, 125)), key=key)
    if kind == "non-minimal 64":
        return 1002, frame(BINARY, b"", length_form=64, length=draw(st.integers(0, 0xFFFF)), key=key)
    if kind == "top bit":
        return 1002, frame(BINARY, b"", length_form=64, length=draw(st.integers(1 << 63, (1 << 64) - 1)), key=key)
    if kind == "too big":
        opcode = CONT if open_message else BINARY
        return 1009, frame(opcode, b"", length=draw(st.integers(max_bytes + 1, max_bytes + 70000)), key=key)
    if kind == "close code":
        code = draw(st.sampled_from([0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000, 65535]))
        return 1002, frame(CLOSE, struct.pack("!H", code), key=key)
    if kind == "close short":
        return 1002, frame(CLOSE, b"\x03", key=key)
    if kind == "close reason":
        return 1007, frame(CLOSE, struct.pack("!H", 1000) + draw(bad_utf8()), key=key)
    if kind == "nested data":
        return 1002, frame(draw(st.sampled_from([TEXT, BINARY])), b"", key=key)
    if kind == "stray continuation":
        return 1002, frame(CONT, b"x", key=key)
    if kind == "too many fragments":
        return 1008, b"".join([frame(BINARY, b"", fin=False, key=key)]
                              + [frame(CONT, b"", fin=False, key=key)] * MAX_FRAGMENTS)
    if kind == "base64":
        return 1007, frame(draw(st.sampled_from([TEXT, BINARY])), draw(bad_base64()), key=key)
    return 1007, frame(TEXT, draw(st.text(max_size=5)).encode() + draw(bad_utf8()), key=key)


@st.composite
def bad_streams(draw):
    subprotocol = draw(st.sampled_from(SUBPROTOCOLS))
    max_bytes = draw(st.integers(400, 2000))
    expected, _, stream = draw(valid_streams(subprotocol))
    open_message = draw(st.booleans())
    if open_message:  # a message left open: the target has what arrived of it
        data, opcode, payload = draw(messages(subprotocol))
        stream += frame(opcode, payload, fin=False, key=draw(keys))
        usable = payload[:len(payload) - len(payload) % 4]
        expected += base64.b64decode(usable) if subprotocol == "base64" else data
    code, bad = draw(bad_frames(subprotocol, max_bytes, open_message))
    return subprotocol, max_bytes, expected, stream, code, bad


@given(bad_streams(), st.lists(control_frames(), max_size=3).map(b"".join), st.data())
def test_a_bad_frame_closes_with_its_code_after_delivering_what_came_before(case, after, draw):
    subprotocol, max_bytes, expected, good, code, bad = case
    s = session(subprotocol, max_bytes)
    target, to_client, ended = feed(s, draw.draw(chunkings(good + bad + after)))
    assert s.client_done and s.close_code == code
    assert target == expected
    assert ended and server_frames(to_client)[-1][1] == CLOSE


@given(bad_streams(), st.binary(min_size=1, max_size=20), st.data())
def test_a_bad_frame_then_garbage_still_closes_with_one_of_our_codes(case, after, draw):
    # websockets parses all of a read before this layer checks payloads (UTF-8,
    # base64, fragment count): a second bad frame in the same read, found by
    # websockets, may name the close code instead of the first.
    subprotocol, max_bytes, expected, good, code, bad = case
    s = session(subprotocol, max_bytes)
    target, to_client, ended = feed(s, draw.draw(chunkings(good + bad + after)))
    assert s.client_done and (s.close_code in OUR_CODES or s.close_code == client_close_code(after))
    assert target == expected
    assert ended and server_frames(to_client)[-1][1] == CLOSE


# -- any bytes ---------------------------------------------------------------------

pieces = st.one_of(
    st.binary(max_size=16),
    st.builds(frame, st.integers(0, 15), st.binary(max_size=10), st.booleans(), keys | st.none(),
              st.integers(0, 7) | st.just(0)),
    st.builds(lambda n: frame(BINARY, b"", length=n, length_form=7), st.integers(0, 125)),
    st.builds(lambda n: frame(BINARY, b"", length=n, length_form=16), st.integers(0, 0xFFFF)),
    st.builds(lambda n: frame(BINARY, b"", length=n, length_form=64), st.integers(0, (1 << 64) - 1)),
)


def client_close_code(stream):
    """The code of the first close frame in a client stream, as far as it parses (None: none seen)."""
    at = 0
    while at + 2 <= len(stream):
        opcode, second = stream[at] & 0x0F, stream[at + 1]
        length, at = second & 0x7F, at + 2
        if length >= 126:
            size = 2 if length == 126 else 8
            length, at = int.from_bytes(stream[at:at + size], "big"), at + size
        key, at = (stream[at:at + 4], at + 4) if second & 0x80 else (b"\0\0\0\0", at)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(stream[at:at + length]))
        at += length
        if opcode == CLOSE:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


@given(st.sampled_from(SUBPROTOCOLS), st.integers(125, 5000),
       st.lists(st.tuples(st.sampled_from(["client", "client", "client", "target", "close"]), pieces),
                max_size=12), st.booleans())
def test_any_bytes_and_actions_never_raise_and_close_with_a_known_code(subprotocol, max_bytes, actions, eof):
    s = session(subprotocol, max_bytes)
    stream = b""
    for action, data in actions:
        if action == "client":
            stream += data
            feed(s, [data])
        elif action == "target":
            s.send_payload(data)
        else:
            s.close(1000, "target closed")
        s.data_to_send()
        assert s.close_code in {None, 1000} | OUR_CODES or s.close_code == client_close_code(stream)
    if eof:
        feed(s, [], eof=True)
        assert s.client_done
    if s.client_done:
        assert s.close_code is not None
    assert s.close_code in {None, 1000, 1006} | OUR_CODES or s.close_code == client_close_code(stream)


# -- regressions ------------------------------------------------------------------

def test_frames_before_a_bad_length_in_the_same_read_reach_the_target():
    s = session("binary", 1000)
    non_minimal = frame(BINARY, b"x" * 5, length_form=16)
    assert s.receive_data(frame(BINARY, b"good") + non_minimal) == [b"good"]
    assert s.client_done and s.close_code == 1002


def test_a_length_with_its_top_bit_set_is_1002_before_the_mask_key_arrives():
    s = session(None, 1000)
    header = frame(BINARY, b"", length_form=64, length=1 << 63)
    assert s.receive_data(header[:10]) == []  # websockets would call it too big (1009)
    assert s.client_done and s.close_code == 1002
