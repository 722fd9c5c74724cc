"""Upstream's `websockify.websocketserver`: WebSocket upgrades in an `http.server` handler.

`WebSocketRequestHandlerMixIn` goes before an `http.server` request handler
class: a GET asking for `Upgrade: websocket` is answered by `handle_upgrade()`,
which accepts it as a `SocketClass` (an `HttpWebSocket`, writing its 101
response through the handler's own `send_response()`), puts that in
`self.request` and calls `handle_websocket()`; every other GET goes to the
handler's `do_GET()` as before. `WebSocketServer` is `http.server.HTTPServer`:
one connection at a time, as upstream; mix in `socketserver.ThreadingMixIn`
for more.
"""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

from .websocket import WebSocket, WebSocketWantReadError, WebSocketWantWriteError

__all__ = ["HttpWebSocket", "WebSocketRequestHandlerMixIn", "WebSocketRequestHandler", "WebSocketServer",
           "WebSocket", "WebSocketWantReadError", "WebSocketWantWriteError"]

if TYPE_CHECKING:  # the mix-in's methods use the handler's
    _Base = BaseHTTPRequestHandler
else:
    _Base = object


class HttpWebSocket(WebSocket):
    """A WebSocket whose handshake response is written by an http.server request handler,
    so that it is logged, and carries Server and Date, like the handler's other responses."""

    def __init__(self, request_handler: Any) -> None:
        super().__init__()
        self.request_handler = request_handler

    def send_response(self, code: int, message: str | None = None) -> None:
        if code == 101:
            # RFC 6455 §4.2.2 answers with HTTP/1.1, and clients refuse a 101 in http.server's
            # default HTTP/1.0 (upstream's plain WebSocketRequestHandler sent one). Set on
            # this handler only: the connection carries frames from now on.
            self.request_handler.protocol_version = "HTTP/1.1"
        self.request_handler.send_response(code, message)

    def send_header(self, keyword: str, value: object) -> None:
        self.request_handler.send_header(keyword, value)

    def end_headers(self) -> None:
        self.request_handler.end_headers()


class WebSocketRequestHandlerMixIn(_Base):
    """Routes WebSocket upgrades to handle_upgrade(), other GETs to do_GET().

    A subclass that overrides handle_one_request() must call this one. `SocketClass` is
    the class of the WebSocket handed to handle_websocket() as `self.request`.
    """

    SocketClass: type[HttpWebSocket] = HttpWebSocket

    def handle_one_request(self) -> None:
        # do_GET is looked up by name once the request line is read: shadowing it on the
        # instance, for this request only, lets the subclass's own do_GET serve the rest.
        self.do_GET = self._upgrade_or_get
        try:
            super().handle_one_request()
        finally:
            self.__dict__.pop("do_GET", None)

    def _upgrade_or_get(self) -> None:
        self.__dict__.pop("do_GET", None)
        if (self.headers.get("upgrade") or "").lower() == "websocket":
            self.handle_upgrade()
            return
        plain_get = getattr(self, "do_GET", None)
        if plain_get is None:  # BaseHTTPRequestHandler's answer to a method it lacks
            self.send_error(501, "Unsupported method ('GET')")
            return
        plain_get()

    def handle_upgrade(self) -> None:
        """Accept the upgrade (or answer 400 saying why not), make the WebSocket
        `self.request`, and call handle_websocket()."""
        websocket = self.SocketClass(self)
        try:
            websocket.accept(self.request, self.headers)
        except Exception as exc:  # noqa: BLE001 - upstream answered any refusal with a 400
            self.send_error(400, str(exc))
            return
        self.request = websocket  # upstream's contract: the WebSocket replaces the socket
        self.close_connection = True  # the connection carries WebSocket frames from now on
        self.handle_websocket()

    def handle_websocket(self) -> None:
        """Serve the WebSocket in `self.request`; return when done. Does nothing by default."""


class WebSocketRequestHandler(WebSocketRequestHandlerMixIn, BaseHTTPRequestHandler):
    pass


class WebSocketServer(HTTPServer):
    pass
