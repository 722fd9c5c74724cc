"""Upstream's `websockify.websocket`: a WebSocket that behaves much like a socket.

`WebSocket` wraps a connected socket, blocking or not, as either end of a
WebSocket: `accept(sock, headers)` on a server, `connect(uri)` as a client.
The protocol itself (handshake checks, framing, masking, answering pings,
the closing handshake) is websockets' Sans-I/O code, through
`protocol.endpoint`; this module does the socket calls and keeps upstream's
contract with its callers:

- a call that cannot finish without waiting for the socket raises
  WebSocketWantReadError or WebSocketWantWriteError (subclasses of ssl's, so
  code written for SSL sockets handles both), and is called again, with the
  same arguments, once the socket is ready;
- `recv()`/`recvmsg()` return one binary message, or None once the connection
  is closed, with the reason in `close_code` and `close_reason`;
- `pending()` says that messages or control frames are already buffered, so
  a select() loop keeps calling `recvmsg()` while it is true.
"""
from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from .protocol.endpoint import Endpoint, EventKind, HandshakeError, Target, accept, connect, parse_target

__all__ = ["WebSocket", "WebSocketWantReadError", "WebSocketWantWriteError", "HandshakeError"]

_READ_SIZE = 65536


class WebSocketWantReadError(ssl.SSLWantReadError):
    pass


class WebSocketWantWriteError(ssl.SSLWantWriteError):
    pass


def _header_items(headers: Any) -> Iterable[tuple[str, str]]:
    """An http.client.HTTPMessage (repeated names kept), a dict, or a list of pairs."""
    if hasattr(headers, "items"):
        return [(str(name), str(value)) for name, value in headers.items()]
    return [(str(name), str(value)) for name, value in headers]


class WebSocket:
    """A WebSocket protocol socket-like class; see the module's docstring."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    # Largest message accepted from the peer, or None for no limit (upstream had none).
    max_message_size: int | None = None

    def __init__(self) -> None:
        self.socket: Any = None
        self.client = False
        self.protocol: str | None = None  # the subprotocol chosen in the handshake
        self.version: str | None = None  # the server's view of the client's version: "hybi-13"
        self.close_code: int | None = None
        self.close_reason: str | None = None
        # The handshake's progress, so that a call that raised WantRead/WantWrite resumes:
        # connect() goes new, tls, send_request, flush_request, response, done; accept() new, flush, done.
        self._state = "new"
        self._endpoint: Endpoint | None = None
        self._outgoing = bytearray()
        self._retry: bytes | None = None  # what a send that raised WantWrite is called again with
        self._headers = bytearray()  # the handshake written through send_response()/send_header()

    # -- the underlying socket's own methods ---------------------------------

    def fileno(self) -> int:
        return int(self._socket().fileno())

    def getpeername(self) -> Any:
        return self._socket().getpeername()

    def getsockname(self) -> Any:
        return self._socket().getsockname()

    def getsockopt(self, *args: Any) -> Any:
        return self._socket().getsockopt(*args)

    def setsockopt(self, *args: Any) -> None:
        self._socket().setsockopt(*args)

    def gettimeout(self) -> float | None:
        return self._socket().gettimeout()  # type: ignore[no-any-return]

    def settimeout(self, value: float | None) -> None:
        self._socket().settimeout(value)

    def setblocking(self, flag: bool) -> None:
        self._socket().setblocking(flag)

    def _socket(self) -> Any:
        if self.socket is None:
            raise OSError("the WebSocket has no socket: not connected, or closed")
        return self.socket

    # -- opening ------------------------------------------------------------

    def connect(self, uri: str, origin: str | None = None, protocols: Iterable[str] = ()) -> None:
        """Connect to a WebSocket server at a ws:// or wss:// (or http://, https://) URI.

        May raise WebSocketWantReadError/WantWriteError on a non-blocking socket;
        call again with the same arguments. Any other error closes the socket it opened.
        """
        self.client = True
        target = parse_target(uri)
        try:
            self._connect(target, origin, protocols)
        except (WebSocketWantReadError, WebSocketWantWriteError):
            raise
        except BaseException:
            self._close()
            raise

    def _connect(self, target: Target, origin: str | None, protocols: Iterable[str]) -> None:
        if self._state == "new":
            self.socket = socket.create_connection((target.host, target.port))
            if target.tls:
                context = ssl.create_default_context()
                self.socket = context.wrap_socket(self.socket, server_hostname=target.host,
                                                  do_handshake_on_connect=False)
                self._state = "tls"
            else:
                self._state = "send_request"
        if self._state == "tls":
            self._socket_call(self.socket.do_handshake, WebSocketWantReadError)
            self._state = "send_request"
        if self._state == "send_request":
            self._endpoint, request = connect(target, origin, list(protocols), self.max_message_size)
            self._outgoing += request
            self._state = "flush_request"
        if self._state == "flush_request":
            self._flush()
            self._state = "response"
        if self._state == "response":
            endpoint = self._opened()
            while not endpoint.handshake_done:
                data = self._read()
                if not data:
                    raise HandshakeError("Socket closed unexpectedly")
                endpoint.receive_data(data)
                if not endpoint.handshake_done and self.socket.gettimeout() == 0.0:
                    raise WebSocketWantReadError  # a blocking socket reads on instead
            self.protocol = endpoint.subprotocol
            self._state = "done"
            return
        raise RuntimeError("WebSocket is in an invalid state")

    def accept(self, socket: Any, headers: Any) -> None:
        """Accept a client's upgrade request, given its socket and its request headers.

        May raise WebSocketWantWriteError; call again with the same arguments. A request
        this side cannot accept raises an Exception (HandshakeError) saying why.
        """
        if self._state == "new":
            self.client = False
            self.socket = socket
            self._endpoint, accepted = accept(_header_items(headers), self.select_subprotocol,
                                              self.max_message_size)
            self.version = f"hybi-{accepted.version:02d}"
            self.protocol = accepted.subprotocol or ""
            self.send_response(101, "Switching Protocols")
            for name, value in accepted.headers:
                self.send_header(name, value)
            self.end_headers()
            self._outgoing += self._headers
            self._headers.clear()
            self._state = "flush"
        if self._state == "flush":
            self._flush()
            self._state = "done"
            return
        raise RuntimeError("WebSocket is in an invalid state")

    def select_subprotocol(self, protocols: list[str]) -> str:
        """The subprotocol to use: one of `protocols`, those the client offered, or "" for
        none (refused when the client offered some, as upstream did). Override it to choose."""
        return ""

    # The server's handshake response goes out through these three, which
    # websocketserver.HttpWebSocket overrides to use http.server's own methods.
    # send_request() is upstream's too, though connect() writes websockets' request whole.

    def send_response(self, code: int, message: str | None = None) -> None:
        self._headers += f"HTTP/1.1 {code} {message or ''}\r\n".encode("latin-1")

    def send_header(self, keyword: str, value: object) -> None:
        self._headers += f"{keyword}: {value}\r\n".encode("latin-1")

    def end_headers(self) -> None:
        self._headers += b"\r\n"

    def send_request(self, type: str, path: str) -> None:
        self._headers += f"{type.upper()} {path} HTTP/1.1\r\n".encode("latin-1")

    # -- control frames -------------------------------------------------------

    def handle_ping(self, data: bytes) -> None:
        """Called by recv()/recvmsg() for each ping. The pong is already queued (RFC 6455
        requires it), so the default does nothing more."""

    def handle_pong(self, data: bytes) -> None:
        """Called by recv()/recvmsg() for each pong; does nothing by default."""

    # -- receiving -------------------------------------------------------------

    def recv(self) -> bytes | None:
        """Like recvmsg(): upstream's recv() returned one message too."""
        return self.recvmsg()

    def recvmsg(self) -> bytes | None:
        """One message (b"" for an empty one), or None once the connection is closed.

        Raises WebSocketWantReadError when no whole message is buffered after one read
        of the socket (even a blocking one, as upstream did), WebSocketWantWriteError
        when a pong or close frame could not be written yet.
        """
        endpoint = self._opened()
        if self.socket is None or endpoint.finished:
            self._finish()
            return None
        if not endpoint.pending:
            data = self._read()
            if not data:
                endpoint.receive_eof()
                self._note_close()
                self._finish()
                return None
            endpoint.receive_data(data)
        return self._next_message(endpoint)

    def pending(self) -> bool:
        """True while received messages or control frames wait for recvmsg()."""
        return self._endpoint is not None and self._endpoint.pending

    def _next_message(self, endpoint: Endpoint) -> bytes | None:
        while (event := endpoint.next_event()) is not None:
            if event.kind is EventKind.MESSAGE:
                self._flush(quietly=True)  # a pong queued before it goes out when it can
                return event.data
            if event.kind is EventKind.PING:
                self.handle_ping(event.data)
            elif event.kind is EventKind.PONG:
                self.handle_pong(event.data)
            self._outgoing += endpoint.data_to_send()
            self._note_close()
            if endpoint.finished:
                self._finish()
                return None
            self._flush()
        self._note_close()
        self._outgoing += endpoint.data_to_send()
        if endpoint.finished:  # websockets failed the connection: it reads no further
            self._finish()
            return None
        self._flush()
        raise WebSocketWantReadError

    def _note_close(self) -> None:
        """close_code and close_reason, as upstream set them: the peer's close, else the close
        sent on a protocol error, else 1006; a close that shutdown() started keeps its 1000."""
        if self.close_code is not None or self._endpoint is None:
            return
        received = self._endpoint.close_received
        sent = self._endpoint.close_sent
        if received is not None:
            code, reason = received
            self.close_code = code
            self.close_reason = ("No close status code specified by peer" if code == 1005
                                 else reason or None)
        elif sent is not None:
            self.close_code, self.close_reason = sent[0], sent[1] or None
        elif self._endpoint.finished:
            self.close_code, self.close_reason = 1006, "Connection closed abnormally"

    def _finish(self) -> None:
        """Write what is left of the close frame, then close the socket (WebSocketWantWriteError
        first if the socket cannot take it yet)."""
        if self._endpoint is not None:
            self._outgoing += self._endpoint.data_to_send()
        if self.socket is None:
            return
        try:
            self._flush()
        except WebSocketWantWriteError:
            raise
        except OSError:  # the peer is gone: what was left to write cannot matter any more
            pass
        self._close()

    # -- sending -------------------------------------------------------------

    def send(self, bytes: bytes) -> int:
        """Send `bytes` as a message (nothing for b""); returns its length."""
        if len(bytes) == 0:
            return 0
        return self.sendmsg(bytes)

    def sendmsg(self, msg: bytes) -> int:
        """Send one binary message; 0 once closing. After WebSocketWantWriteError, call again
        with the same message (ValueError for another) to finish writing it."""
        if not isinstance(msg, bytes):
            raise TypeError("a WebSocket message is bytes")
        endpoint = self._opened()
        if endpoint.close_sent is not None or self.socket is None:
            return 0
        self._send(msg, endpoint.send_binary)
        return len(msg)

    def ping(self, data: bytes = b"") -> None:
        """Send a ping; after WebSocketWantWriteError, call again with the same data."""
        if not isinstance(data, bytes):
            raise TypeError("ping data is bytes")
        self._send(data, self._opened().send_ping)

    def pong(self, data: bytes = b"") -> None:
        """Send a pong; after WebSocketWantWriteError, call again with the same data."""
        if not isinstance(data, bytes):
            raise TypeError("pong data is bytes")
        self._send(data, self._opened().send_pong)

    def _send(self, data: bytes, frame: Callable[[bytes], None]) -> None:
        if self._retry is not None:
            if self._retry != data:
                raise ValueError("called again with other data than the send that is in progress")
            self._flush()
            self._retry = None
            return
        frame(data)
        self._outgoing += self._opened().data_to_send()
        try:
            self._flush()
        except WebSocketWantWriteError:
            self._retry = data
            raise

    def shutdown(self, how: int | None, code: int | None = 1000, reason: str | None = None) -> None:
        """Start the closing handshake (`how` is ignored, as upstream did); keep calling
        recvmsg() until it returns None to read the peer's answer."""
        endpoint = self._opened()
        if endpoint.close_sent is not None or self.socket is None:
            if endpoint.finished:
                self._finish()
            else:
                self._flush()
            return
        if endpoint.close_received is None:
            self.close_code, self.close_reason = 1000, "Locally initiated close"
        endpoint.send_close(code, (reason or "") if code is not None else "")
        self._outgoing += endpoint.data_to_send()
        self._flush()

    def close(self, code: int | None = 1000, reason: str | None = None) -> None:
        """Send a close frame and close the socket at once."""
        if self._endpoint is not None and self.socket is not None:
            self.shutdown(socket.SHUT_RDWR, code, reason)
        self._close()

    # -- the socket ---------------------------------------------------------

    def _opened(self) -> Endpoint:
        if self._endpoint is None:
            raise RuntimeError("the WebSocket is not connected: call accept() or connect() first")
        return self._endpoint

    @staticmethod
    def _socket_call(call: Any, would_block: type[OSError], *args: Any) -> Any:
        """`call(*args)`, with "try again later" raised as our WantRead/WantWrite errors
        (`would_block` for a plain socket's; a TLS socket's say which they want)."""
        try:
            return call(*args)
        except ssl.SSLWantReadError:
            raise WebSocketWantReadError() from None
        except ssl.SSLWantWriteError:
            raise WebSocketWantWriteError() from None
        except BlockingIOError:
            raise would_block() from None

    def _read(self) -> bytes:
        """What the socket has, and what a TLS socket holds decrypted already; b"" at its end."""
        sock = self._socket()
        data = bytes(self._socket_call(sock.recv, WebSocketWantReadError, _READ_SIZE))
        pending = getattr(sock, "pending", None)
        while data and pending is not None and pending():
            data += self._socket_call(sock.recv, WebSocketWantReadError, pending())
        return data

    def _flush(self, quietly: bool = False) -> None:
        """Write out what is queued; WebSocketWantWriteError if some is left (quietly: no error)."""
        while self._outgoing:
            try:
                sent = self._socket_call(self._socket().send, WebSocketWantWriteError, self._outgoing)
            except OSError:  # WantWrite among them; a broken pipe shows as the end of reading too
                if quietly:
                    return
                raise
            del self._outgoing[:sent]

    def _close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
