"""A line-based chat server in plain sockets: it knows nothing of WebSockets.

Every line a client sends is broadcast to every connected client, prefixed with
the sender's number. Used by `make run` behind websockify.
"""
from __future__ import annotations

import argparse
import selectors
import signal
import socket
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5999)
    args = parser.parse_args()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(0))

    selector = selectors.DefaultSelector()
    listener = socket.create_server((args.host, args.port), reuse_port=False)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    clients: dict[socket.socket, tuple[int, bytes]] = {}
    next_id = 1
    print(f"chat server listening on {args.host}:{args.port}", flush=True)

    def broadcast(line: bytes) -> None:
        for other in list(clients):
            try:
                other.sendall(line)
            except OSError:
                drop(other)

    def drop(sock: socket.socket) -> None:
        if sock in clients:
            number, _ = clients.pop(sock)
            selector.unregister(sock)
            sock.close()
            broadcast(f"* user{number} left\n".encode())

    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            if sock is listener:
                conn, _ = listener.accept()
                conn.setblocking(True)
                clients[conn] = (next_id, b"")
                selector.register(conn, selectors.EVENT_READ)
                conn.sendall(f"* welcome, you are user{next_id}\n".encode())
                broadcast(f"* user{next_id} joined\n".encode())
                next_id += 1
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                drop(sock)
                continue
            number, pending = clients[sock]
            pending += data
            *lines, pending = pending.split(b"\n")
            clients[sock] = (number, pending[-4096:])
            for line in lines:
                broadcast(b"user%d: %s\n" % (number, line.rstrip(b"\r")))


if __name__ == "__main__":
    main()
