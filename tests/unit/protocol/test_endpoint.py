"""One end of a WebSocket for upstream's WebSocket class: a client and a server endpoint
talking through bytes handed across by the test, no sockets."""
import pytest
from websockets.frames import Frame, Opcode

from websockify.protocol.endpoint import (
    TEXT_REFUSED,
    Endpoint,
    Event,
    EventKind,
    HandshakeError,
    Target,
    accept,
    connect,
    parse_target,
)

KEY = "DKURYVK9cRFul1vOZVA56Q=="
REQUEST = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
           ("Sec-WebSocket-Key", KEY)]


def none(_offered: list[str]) -> str | None:
    return ""


def test_accept_answers_with_upstreams_headers_and_no_date():
    endpoint, accepted = accept(REQUEST, none)
    assert accepted.headers == [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                ("Sec-WebSocket-Accept", "pczpYSQsvE1vBpTQYjFQPcuoj6M=")]
    assert (accepted.subprotocol, accepted.version) == (None, 13)
    assert endpoint.handshake_done and endpoint.is_open


@pytest.mark.parametrize("version", ["7", "8"])
def test_the_hybi_drafts_versions_are_accepted_as_upstream_did(version):
    _, accepted = accept([*REQUEST[:2], ("Sec-WebSocket-Version", version), REQUEST[3]], none)
    assert accepted.version == int(version)


def test_a_missing_connection_header_is_not_refused():
    accept([item for item in REQUEST if item[0] != "Connection"], none)


@pytest.mark.parametrize("headers", [
    [item for item in REQUEST if item[0] != "Sec-WebSocket-Version"],
    [*REQUEST[:2], ("Sec-WebSocket-Version", "5"), REQUEST[3]],
    [item for item in REQUEST if item[0] != "Sec-WebSocket-Key"],
    [*REQUEST[:3], ("Sec-WebSocket-Key", "short")],
    [("Upgrade", "websocket2"), *REQUEST[1:]],
])
def test_bad_requests_raise_handshake_error(headers):
    with pytest.raises(HandshakeError):
        accept(headers, none)


def test_subprotocol_choice_follows_upstream():
    offered = [*REQUEST, ("Sec-WebSocket-Protocol", "chat, binary")]
    _, accepted = accept(offered, lambda protocols: "binary" if "binary" in protocols else "")
    assert accepted.subprotocol == "binary"
    assert ("Sec-WebSocket-Protocol", "binary") in accepted.headers
    with pytest.raises(HandshakeError, match="Invalid protocol selected"):
        accept(offered, lambda protocols: "other")
    with pytest.raises(HandshakeError, match="Invalid protocol selected"):
        accept(offered, none)  # some offered, none chosen: upstream refused it
    with pytest.raises(HandshakeError, match="Invalid protocol selected"):
        accept(REQUEST, lambda protocols: "binary")  # chosen, none offered


def test_parse_target():
    assert parse_target("ws://example.com/x") == Target("example.com", 80, False, "ws://example.com/x")
    assert parse_target("https://example.com:8443/") == Target("example.com", 8443, True, "wss://example.com:8443/")
    with pytest.raises(ValueError, match="Unknown scheme 'ftp'"):
        parse_target("ftp://example.com/")


def pair(subprotocols: list[str] = (), choose=none) -> tuple[Endpoint, Endpoint]:
    client, request = connect(parse_target("ws://example.com/path"), "http://example.com", subprotocols)
    head, _, _ = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /path HTTP/1.1"
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    assert ("Origin", "http://example.com") in headers
    server, accepted = accept(headers, choose)
    response = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(f"{k}: {v}\r\n" for k, v in accepted.headers)
    client.receive_data(response.encode() + b"\r\n")
    assert client.handshake_done
    return client, server


def events(endpoint: Endpoint) -> list[Event]:
    found = []
    while (event := endpoint.next_event()) is not None:
        found.append(event)
    return found


def test_messages_both_ways_with_fragments_and_control_frames():
    client, server = pair()
    client.send_binary(b"one")
    client.send_ping(b"p")
    server.receive_data(client.data_to_send())
    assert server.pending
    assert events(server) == [Event(EventKind.MESSAGE, b"one"), Event(EventKind.PING, b"p")]
    assert server.data_to_send() == b"\x8a\x01p"  # websockets answered the ping
    # A fragmented message with a pong between its fragments.
    server.receive_data(Frame(Opcode.BINARY, b"ab", fin=False).serialize(mask=True)
                        + Frame(Opcode.PONG, b"q").serialize(mask=True)
                        + Frame(Opcode.CONT, b"cd").serialize(mask=True))
    assert events(server) == [Event(EventKind.PONG, b"q"), Event(EventKind.MESSAGE, b"abcd")]
    server.send_binary(b"back")
    client.receive_data(server.data_to_send())
    assert events(client) == [Event(EventKind.MESSAGE, b"back")]


def test_a_text_message_is_refused_with_1003_and_skipped():
    client, server = pair()
    server.receive_data(Frame(Opcode.TEXT, b"t", fin=False).serialize(mask=True)
                        + Frame(Opcode.CONT, b"u").serialize(mask=True)
                        + Frame(Opcode.BINARY, b"still read").serialize(mask=True))
    assert events(server) == [Event(EventKind.MESSAGE, b"still read")]
    assert server.close_sent == (1003, TEXT_REFUSED) and not server.finished
    client.receive_data(server.data_to_send())
    assert events(client) == [Event(EventKind.CLOSE)]
    assert client.close_received == (1003, TEXT_REFUSED) and client.finished
    server.receive_data(client.data_to_send())
    assert server.finished and server.close_received == (1003, TEXT_REFUSED)


def test_a_close_without_a_code_reads_as_1005():
    client, server = pair()
    client.send_close(None)
    server.receive_data(client.data_to_send())
    assert events(server) == [Event(EventKind.CLOSE)]
    assert server.close_received == (1005, "") and server.finished


def test_closes_that_may_not_be_sent_raise_value_error():
    client, _ = pair()
    with pytest.raises(ValueError):
        client.send_close(1006)


def test_a_protocol_error_fails_the_connection():
    _, server = pair()
    server.receive_data(Frame(Opcode.BINARY, b"unmasked").serialize(mask=False))
    assert server.finished and server.close_sent is not None and server.close_sent[0] == 1002
    assert events(server) == []


def test_the_message_size_limit():
    client, _ = pair()
    server, _ = accept(REQUEST, none, max_message_bytes=4)
    client.send_binary(b"12345")
    server.receive_data(client.data_to_send())
    assert server.finished and server.close_sent is not None and server.close_sent[0] == 1009


def test_the_end_of_the_stream_finishes_without_a_close():
    _, server = pair()
    server.receive_eof()
    assert server.finished and server.close_received is None and server.close_sent is None


def test_the_client_refuses_a_bad_response():
    client, _ = connect(parse_target("ws://h/"))
    with pytest.raises(HandshakeError, match="WebSocket request denied: 403 Forbidden"):
        client.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    client, _ = connect(parse_target("ws://h/"))
    with pytest.raises(HandshakeError, match="Sec-WebSocket-Accept"):
        client.receive_data(b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Accept: wrong\r\n\r\n")


def test_a_client_that_offered_subprotocols_refuses_a_reply_choosing_none():
    client, request = connect(parse_target("ws://h/"), subprotocols=["binary"])
    headers = [tuple(line.split(": ", 1)) for line in request.decode().split("\r\n")[1:] if line]
    _, accepted = accept([item for item in headers if item[0] != "Sec-WebSocket-Protocol"], none)
    response = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(f"{k}: {v}\r\n" for k, v in accepted.headers)
    with pytest.raises(HandshakeError, match="Invalid protocol chosen by server"):
        client.receive_data(response.encode() + b"\r\n")
    client, server = pair(["binary"], lambda offered: "binary")
    assert client.subprotocol == server.subprotocol == "binary"


def test_frames_after_the_response_are_kept():
    client, request = connect(parse_target("ws://h/"))
    headers = [tuple(line.split(": ", 1)) for line in request.decode().split("\r\n")[1:] if line]
    server, accepted = accept(headers, none)
    server.send_binary(b"early")
    response = "HTTP/1.1 101 Switching Protocols\r\n" + "".join(f"{k}: {v}\r\n" for k, v in accepted.headers)
    client.receive_data(response.encode() + b"\r\n" + server.data_to_send())
    assert events(client) == [Event(EventKind.MESSAGE, b"early")]
