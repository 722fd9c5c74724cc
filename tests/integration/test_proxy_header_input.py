"""Bad input to --proxy-protocol (issue 19), against a real websockify process over loopback:
truncated, oversized and forged PROXY headers (Hypothesis) are closed without a byte of
answer and never reach the target, while honest clients, and one session held open across
the whole run, keep working; a header from outside --trusted-proxies is refused at once; a
PROXY header on a listener without --proxy-protocol gets a clear refusal."""
from __future__ import annotations

import re
import socket
import threading
import time
from typing import Iterator

import pytest
from helpers import Proxy, TcpServer, echo_handler, running_proxy, timeout, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawws import frame, read_frame, read_head, status_of, upgrade_request

from websockify.protocol.proxy_header import (
    MAX_HEADER_BYTES,
    V1_MAX_BYTES,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    encode_v1,
    encode_v1_unknown,
    encode_v2,
    encode_v2_local,
    parse,
)

# Far beyond any wait of a bad connection: one closed by the deadline instead of at once
# makes its read time out and the test fail.
PATIENT_HANDSHAKE_S = 120
SHORT_HANDSHAKE_S = 1.5

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class CountingEcho:
    """An echo target that counts the connections it accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted = 0

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    def __call__(self, conn: socket.socket) -> None:
        with self._lock:
            self._accepted += 1
        echo_handler(conn)


@pytest.fixture
def target() -> Iterator[tuple[TcpServer, CountingEcho]]:
    counter = CountingEcho()
    server = TcpServer(counter)
    yield server, counter
    server.close()


# -- clients ---------------------------------------------------------------------

def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout(10))
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def send(sock: socket.socket, data: bytes) -> None:
    """Send what the server may refuse before it has read it all."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def end_input(sock: socket.socket) -> None:
    """Shut our sending side, unless the server has closed the connection already."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:  # ENOTCONN after the server's reset
        pass


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too). Bounded by the
    socket's timeout: a server that keeps the connection open fails the test."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def open_session(port: int, header: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A WebSocket session behind `header`, upgraded (101)."""
    sock = connect(port, source)
    sock.sendall(header + upgrade_request("/"))
    head = read_head(sock)
    assert status_of(head) == 101, head
    return sock


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(frame(0x2, payload))
    opcode, data = read_frame(sock)
    assert opcode == 0x2
    return data


def honest_session(port: int, header: bytes, payload: bytes) -> None:
    with open_session(port, header) as sock:
        assert echo(sock, payload) == payload


def assert_healthy(proxy: Proxy) -> None:
    assert proxy.proc.poll() is None, proxy.log
    assert "Traceback" not in proxy.log, proxy.log


# -- what the bad headers are made of --------------------------------------------

endpoints = st.tuples(st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)),
                      st.integers(0, 65535))
tlvs = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=4)
valid_headers = st.one_of(
    st.builds(encode_v1, endpoints, endpoints),
    st.builds(lambda source, destination, extra: encode_v2(source, destination, tlvs=extra),
              endpoints, endpoints, tlvs),
    st.just(encode_v1_unknown()),
    st.just(encode_v2_local()),
)
honest_headers = st.one_of(
    st.builds(encode_v1, st.tuples(st.just("203.0.113.9"), st.integers(1, 65535)), st.just(("127.0.0.1", 80))),
    st.builds(encode_v2, st.tuples(st.just("2001:db8::9"), st.integers(1, 65535)), st.just(("::1", 80))),
)


def outcome(data: bytes) -> ProxyHeader | None | type[ProxyHeaderError]:
    try:
        return parse(data)
    except ProxyHeaderError:
        return ProxyHeaderError


@st.composite
def truncated(draw) -> bytes:
    header = draw(valid_headers)
    return header[:draw(st.integers(0, len(header) - 1))]


@st.composite
def oversized_v1(draw) -> bytes:
    """A v1 line that never ends within its 107 bytes; its characters could all belong to one."""
    head, alphabet = draw(st.sampled_from([(b"PROXY TCP4 ", "0123456789."), (b"PROXY TCP6 ", "0123456789abcdef:"),
                                           (b"PROXY TCP4 ", "0123456789. "), (b"PROXY UNKNOWN ", None)]))
    if alphabet is None:  # UNKNOWN: anything up to the CRLF
        filler = draw(st.binary(min_size=1, max_size=8).filter(lambda b: b"\r" not in b))
    else:
        filler = draw(st.text(alphabet, min_size=1, max_size=8)).encode()
    size = draw(st.integers(V1_MAX_BYTES + 1, 2000))
    return (head + filler * size)[:size]


@st.composite
def oversized_v2(draw) -> bytes:
    """A v2 header longer than MAX_HEADER_BYTES in all, then some of its bytes (up to 8 KiB)."""
    length = draw(st.integers(MAX_HEADER_BYTES - 16 + 1, 0xFFFF))
    start = V2_SIGNATURE + bytes([draw(st.sampled_from([0x20, 0x21])), draw(st.sampled_from([0x00, 0x11, 0x21]))])
    return start + length.to_bytes(2, "big") + bytes(draw(st.integers(0, min(length, 8192))))


@st.composite
def wrong_signature(draw) -> bytes:
    header = draw(valid_headers)
    signature = V2_SIGNATURE if header.startswith(V2_SIGNATURE) else b"PROXY "
    position = draw(st.integers(0, len(signature) - 1))
    value = draw(st.integers(0, 255).filter(lambda v: v != header[position]))
    return header[:position] + bytes([value]) + header[position + 1:] + upgrade_request("/")


_V1_ADDRESSES = ["256.1.1.1", "1.2.3", "1.2.3.4.5", "::g", "1:2:3:4:5:6:7:8:9", "", "10.0.0.1", "::1", "fe80::1"]
_V1_PORTS = ["65536", "99999", "01", "-1", "", "1e3", "0x50", "80", "0", "65535"]


@st.composite
def forged_v1(draw) -> bytes:
    """A v1 line of wrong protocols, addresses, ports or spacing (an invalid field at least)."""
    fields = [draw(st.sampled_from(_V1_ADDRESSES)), draw(st.sampled_from(_V1_ADDRESSES)),
              draw(st.sampled_from(_V1_PORTS)), draw(st.sampled_from(_V1_PORTS))]
    fields = draw(st.sampled_from([fields, fields[:3], fields + ["1"]]))
    protocol = draw(st.sampled_from(["TCP4", "TCP6", "TCP5", "UDP4", "tcp4"]))
    separator = draw(st.sampled_from([" ", "  "]))
    return f"PROXY {protocol} {separator.join(fields)}\r\n".encode() + upgrade_request("/")


@st.composite
def forged_v2(draw) -> bytes:
    """A valid v2 header with one byte of its version, command, family, length, addresses
    or TLVs changed: a bad version or command, an unknown or datagram family, a length
    too small for the addresses or too big for the bytes, a TLV running past the end."""
    header = draw(st.builds(lambda source, destination, extra: encode_v2(source, destination, tlvs=extra),
                            endpoints, endpoints, tlvs))
    position = draw(st.integers(12, len(header) - 1))
    value = draw(st.integers(0, 255).filter(lambda v: v != header[position]))
    return header[:position] + bytes([value]) + header[position + 1:]


@st.composite
def garbage_after_prefix(draw) -> bytes:
    header = draw(valid_headers)
    return header[:draw(st.integers(1, len(header) - 1))] + draw(st.binary(min_size=1, max_size=64))


bad_headers = st.one_of(truncated(), oversized_v1(), oversized_v2(), wrong_signature(), forged_v1(), forged_v2(),
                        garbage_after_prefix()).filter(lambda data: not isinstance(outcome(data), ProxyHeader))


# -- on a --proxy-protocol listener ------------------------------------------------

@pytest.mark.parametrize("event_loop", ["auto", "asyncio"])
def test_bad_headers_are_closed_and_other_sessions_go_on(target, event_loop):
    server, counter = target
    with running_proxy("--proxy-protocol", "--handshake-timeout", str(PATIENT_HANDSHAKE_S), "127.0.0.1:0",
                       server.address, env={"WEBSOCKIFY_EVENT_LOOP": event_loop}) as proxy:
        held = open_session(proxy.port, encode_v2(("198.51.100.1", 4242), ("127.0.0.1", 80)))
        assert echo(held, b"held") == b"held"  # an echo proves the target counted its connection
        rounds = [0]

        @PROPERTY
        @given(bad=bad_headers, then_eof=st.booleans(), honest=honest_headers)
        def bad_header_is_closed(bad: bytes, then_eof: bool, honest: bytes) -> None:
            rounds[0] += 1
            accepted = counter.accepted
            with connect(proxy.port) as sock:
                sock.settimeout(timeout(5))  # so that a failing example shrinks in minutes, not hours
                send(sock, bad)
                # Bytes that still need more are refused when the input ends, not at the deadline.
                if then_eof or outcome(bad) is None:
                    end_input(sock)
                honest_session(proxy.port, honest, b"honest %d" % rounds[0])  # while the bad one may be open
                assert answer(sock) == b""  # closed, never a 101 nor an HTTP error
            honest_session(proxy.port, honest, b"after %d" % rounds[0])
            assert echo(held, b"held %d" % rounds[0]) == b"held %d" % rounds[0]
            assert counter.accepted == accepted + 2  # the two honest sessions, never the bad one
            assert_healthy(proxy)

        try:
            bad_header_is_closed()
            assert echo(held, b"still here") == b"still here"
        finally:
            held.close()
        proxy.wait_log(r"\b198\.51\.100\.1:4242 target=")  # the held session ended, named by its header
        # One kind of line for both (a flood writes three in ten seconds, then a count).
        proxy.wait_log(r"dropped: (no valid PROXY header|the connection ended inside its PROXY header) "
                       r"\(--proxy-protocol\)")
        assert_healthy(proxy)


def test_a_header_cut_off_then_the_end_of_input_is_closed_at_once(target):
    """A peek shows the bytes still unread, never the end after them: without a look at the
    socket's state, such a connection stayed until the deadline (PATIENT_HANDSHAKE_S here)."""
    server, counter = target
    with running_proxy("--proxy-protocol", "--handshake-timeout", str(PATIENT_HANDSHAKE_S), "127.0.0.1:0",
                       server.address) as proxy:
        for cut in (encode_v1(("10.2.3.4", 5), ("127.0.0.1", 80))[:20],
                    encode_v2(("10.2.3.5", 6), ("127.0.0.1", 80))[:22]):
            with connect(proxy.port) as sock:
                port = sock.getsockname()[1]
                send(sock, cut)
                end_input(sock)
                assert answer(sock) == b""  # within the socket's timeout, far before the deadline
            proxy.wait_log(rf"127\.0\.0\.1:{port}: dropped: the connection ended inside its PROXY header "
                           r"\(--proxy-protocol\)")
        honest_session(proxy.port, encode_v1(("10.2.3.6", 7), ("127.0.0.1", 80)), b"still served")
        assert counter.accepted == 1
        assert_healthy(proxy)


@pytest.mark.parametrize("event_loop", ["auto", "asyncio"])
def test_a_header_cut_off_then_silence_is_closed_at_the_deadline(target, event_loop):
    server, counter = target
    with running_proxy("--proxy-protocol", "--handshake-timeout", str(SHORT_HANDSHAKE_S), "127.0.0.1:0",
                       server.address, env={"WEBSOCKIFY_EVENT_LOOP": event_loop}) as proxy:

        @settings(PROPERTY, max_examples=4)
        @given(cut_headers=st.lists(truncated(), min_size=1, max_size=6), honest=honest_headers)
        def silent_connections_are_closed(cut_headers: list[bytes], honest: bytes) -> None:
            accepted = counter.accepted
            silent = []
            for cut in cut_headers:
                started = time.monotonic()  # before the connection exists: the deadline runs from later
                sock = connect(proxy.port)
                sock.settimeout(SHORT_HANDSHAKE_S + timeout(10))
                send(sock, cut)
                silent.append((started, sock))
            honest_session(proxy.port, honest, b"meanwhile")
            for started, sock in silent:
                with sock:
                    assert answer(sock) == b""
                    # Not at once (it may yet end), and by the deadline (the socket's timeout).
                    assert time.monotonic() - started >= SHORT_HANDSHAKE_S / 2
            assert counter.accepted == accepted + 1
            assert_healthy(proxy)

        silent_connections_are_closed()
        proxy.wait_log(r"dropped: no PROXY header within 1\.5s \(--proxy-protocol\)")
        assert_healthy(proxy)


# -- from outside --trusted-proxies ------------------------------------------------

def test_a_valid_header_from_an_untrusted_address_is_refused_at_once(target):
    server, counter = target
    with running_proxy("--proxy-protocol", "--trusted-proxies", "127.0.0.5", "--handshake-timeout",
                       str(PATIENT_HANDSHAKE_S), "127.0.0.1:0", server.address) as proxy:
        for source, header in (("127.0.0.1", encode_v1(("10.9.8.7", 5555), ("127.0.0.1", 80))),
                               ("127.0.0.2", encode_v2(("10.9.8.6", 5556), ("127.0.0.1", 80)))):
            with connect(proxy.port, source) as sock:
                port = sock.getsockname()[1]
                send(sock, header + upgrade_request("/"))
                assert answer(sock) == b""  # within the socket's timeout, far before the deadline
            line = proxy.wait_log(rf"{re.escape(source)}:{port}: refused: not a trusted proxy \(--trusted-proxies\)")
            assert len(re.findall(rf"{re.escape(source)}:{port}\b", proxy.log)) == 1, line
        # The trusted proxy gets through, so the refusals above were about the address alone.
        with open_session(proxy.port, encode_v1(("10.9.8.5", 5557), ("127.0.0.1", 80)), "127.0.0.5") as sock:
            assert echo(sock, b"trusted") == b"trusted"
        assert counter.accepted == 1
        proxy.wait_log(r"\b10\.9\.8\.5:5557 target=")
        assert "10.9.8.7" not in proxy.log and "10.9.8.6" not in proxy.log
        assert_healthy(proxy)


# -- on a listener without --proxy-protocol ----------------------------------------

def test_a_proxy_header_on_a_listener_that_expects_none_is_refused(target):
    server, counter = target
    with running_proxy("127.0.0.1:0", server.address) as proxy:
        with open_session(proxy.port, b"") as held:
            assert echo(held, b"before") == b"before"
            # Either version is told apart from HTTP and dropped without an answer, the line
            # naming what came and the option that reads it. (From addresses of their own, so
            # that no other client's log line can name them.)
            with connect(proxy.port, "127.0.0.2") as sock:
                port = sock.getsockname()[1]
                send(sock, encode_v1(("10.1.2.3", 5555), ("127.0.0.1", 80)) + upgrade_request("/"))
                assert answer(sock) == b""
            with connect(proxy.port, "127.0.0.3") as sock:
                v2_port = sock.getsockname()[1]
                send(sock, encode_v2(("10.1.2.4", 5556), ("127.0.0.1", 80)) + upgrade_request("/"))
                assert answer(sock) == b""
            for client_port, source in ((port, "2"), (v2_port, "3")):
                proxy.wait_log(rf"127\.0\.0\.{source}:{client_port}: dropped: not HTTP \(a PROXY protocol header, "
                               r"and --proxy-protocol is off\)")
            honest_session(proxy.port, b"", b"after")  # other clients are still served
            assert echo(held, b"during") == b"during"
        wait_for(lambda: proxy.log.count(" target=") >= 2, 10, "both sessions' end lines")
        for client in (rf"127\.0\.0\.2:{port}\b", rf"127\.0\.0\.3:{v2_port}\b"):
            assert len(re.findall(client, proxy.log)) == 1, proxy.log  # one line each
        assert counter.accepted == 2  # the held and the honest sessions only
        assert "10.1.2.3" not in proxy.log and "10.1.2.4" not in proxy.log
        assert_healthy(proxy)

