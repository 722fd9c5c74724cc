"""--hixie76: a legacy Hixie-76 client through the proxy, over a raw socket."""
import base64
import socket

from helpers import running_proxy, timeout

from websockify.protocol.hixie import challenge_response

KEY1, KEY2, KEY3 = "4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", b"^n:ds[4U"


def hixie_connect(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout(10))
    sock.sendall(f"GET /websockify HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: Upgrade\r\n"
                 f"Upgrade: WebSocket\r\nOrigin: http://localhost\r\nSec-WebSocket-Key1: {KEY1}\r\n"
                 f"Sec-WebSocket-Key2: {KEY2}\r\n\r\n".encode())
    sock.sendall(KEY3[:3])  # the key may come in pieces
    sock.sendall(KEY3[3:])
    reply = b""
    while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < 16:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return sock, reply


def read_frame(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\xff"):
        chunk = sock.recv(1)
        assert chunk, "closed"
        data += chunk
    assert data[0] == 0
    return base64.b64decode(data[1:-1])


def test_hixie76_client_echoes_through_the_proxy(echo_server):
    with running_proxy("--hixie76", "127.0.0.1:0", echo_server.address) as proxy:
        sock, reply = hixie_connect(proxy.port)
        head, body = reply.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 WebSocket Protocol Handshake")
        assert f"Sec-WebSocket-Location: ws://localhost:{proxy.port}/websockify".encode() in head
        assert body == challenge_response(KEY1, KEY2, KEY3)
        for message in (b"hello", bytes(range(256))):
            sock.sendall(b"\x00" + base64.b64encode(message) + b"\xff")
            received = b""
            while len(received) < len(message):
                received += read_frame(sock)
            assert received == message
        sock.sendall(b"\xff\x00")
        assert sock.recv(2) == b"\xff\x00"
        sock.close()
        proxy.wait_log("up=261 down=261 .*close=1000")


def test_hixie76_is_refused_without_the_flag(echo_proxy):
    sock, reply = hixie_connect(echo_proxy.port)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 400")
