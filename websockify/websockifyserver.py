"""Upstream's `websockify.websockifyserver`, for programs that subclass its classes.

OpenStack's console proxies (nova, ironic, zun) and others subclass
`ProxyRequestHandler` (websocketproxy.py), whose base is
`WebSockifyRequestHandler` here, and call `WebSockifyServer.socket()`. What
they get is upstream's interface on our engine:

- A subclass's `new_websocket_client()` runs on a thread of its own once the
  client's upgrade is accepted (server/handler_threads.py), with a blocking
  view of the client: `recv_frames()`, `send_frames()`, `send_close()`,
  `send_ping()`. Its `do_proxy(target)` hands the connected target socket to
  the event loop's relay and waits for the session's end, so the bytes move at
  our speed, with our flow control, limits, heartbeat, recording and logs.
- `self.path`, `self.headers` (an `http.client.HTTPMessage`), `self.server`
  (the WebSocketProxy object), `self.client_address`, `msg`/`vmsg`/`warn`,
  `log_message`, `CClose`, `validate_connection`/`auth_connection` (the server
  has already checked the token and the auth plugin before the upgrade).

Not offered, because our server has none: the fork per connection, the
`select` loop (`poll`, `top_new_client`, `do_handshake`), `daemonize` (use
`daemon=True`), and the `SimpleHTTPRequestHandler` file server (our static file
server answers plain HTTP requests).
"""
from __future__ import annotations

import http.client
import io
import logging
import os
import socket
import ssl
import sys
import time
from http.server import SimpleHTTPRequestHandler
from typing import Any

from .protocol.http import RequestHead
from .server.handler_session import ClientChannel, Closed

__all__ = ["WebSockifyRequestHandler", "WebSockifyServer"]


class WebSockifyRequestHandler(SimpleHTTPRequestHandler):
    """Upstream's handler base: one per client, on its own thread. Its HTTP methods are
    the standard library's, as upstream's were; a subclass that overrides them answers
    plain GET and HEAD requests itself (handle_http)."""

    server_version = "WebSockify"
    protocol_version = "HTTP/1.1"

    class CClose(Exception):
        """Raised in new_websocket_client(): close the client with (code, reason)."""

    def __init__(self, req: Any, addr: Any, server: Any):
        # Upstream's base (BaseRequestHandler) served the request from __init__;
        # here the server calls handle_websocket() once the subclass is built.
        self.request = req
        self.client_address = addr
        self.server: Any = server  # upstream's: the WebSocketProxy, whatever its subclass added
        self.only_upgrade = getattr(server, "only_upgrade", False)
        self.verbose = getattr(server, "verbose", False)
        self.daemon = getattr(server, "daemon", False)
        self.record = getattr(server, "record", False)
        self.run_once = getattr(server, "run_once", False)
        self.rec = None
        self.handler_id = getattr(server, "handler_id", 0)
        self.file_only = getattr(server, "file_only", False)
        self.traffic = getattr(server, "traffic", False)
        self.web_auth = getattr(server, "web_auth", False)
        self.host_token = getattr(server, "host_token", False)
        self.logger = getattr(server, "logger", None) or WebSockifyServer.get_logger()
        self.path = "/"
        self.command = "GET"
        self.request_version = "HTTP/1.1"
        self.requestline = ""
        self.headers: http.client.HTTPMessage = http.client.HTTPMessage()
        self.start_time = int(time.time() * 1000)
        # SimpleHTTPRequestHandler's: files come from --web (upstream changed directory to it).
        self.directory = getattr(server, "web", None) or os.getcwd()

    # -- set by the server before handle_websocket() -----------------------------------

    def _accept_request(self, head: RequestHead) -> None:
        self.command = head.method
        self.path = head.target
        self.request_version = head.version
        self.requestline = f"{head.method} {head.target} {head.version}"
        headers = http.client.HTTPMessage()
        for name, value in head.headers.raw_items():
            headers[name] = value  # appends: repeated headers stay, in their order
        self.headers = headers

    # -- logging, as upstream ------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        host = self.client_address[0] if self.client_address else ""
        self.logger.info("%s - - [%s] %s", host, time.strftime("%d/%b/%Y %H:%M:%S"), format % args)

    def print_traffic(self, token: str = ".") -> None:
        if self.traffic:
            sys.stdout.write(token)
            sys.stdout.flush()

    def msg(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.log(logging.INFO, "% 3d: %s" % (self.handler_id, msg), *args, **kwargs)

    def vmsg(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.log(logging.DEBUG, "% 3d: %s" % (self.handler_id, msg), *args, **kwargs)

    def warn(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.log(logging.WARNING, "% 3d: %s" % (self.handler_id, msg), *args, **kwargs)

    # -- the client ------------------------------------------------------------------------

    def send_frames(self, bufs: list[bytes] | None = None) -> bool:
        """Send each buffer as one message; False: nothing is left to send (upstream's meaning)."""
        if bufs:
            self.request.send_messages([bytes(buf) for buf in bufs])
        return False

    def recv_frames(self) -> tuple[list[bytes], dict[str, Any] | bool]:
        """(messages, closed): waits for at least one message or the close; `closed` is
        upstream's `{'code': ..., 'reason': ...}` once the client has closed, else False."""
        messages, closed = self.request.receive_messages()
        return messages, ({"code": closed.code, "reason": closed.reason} if closed is not None else False)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.request.close_session(code, reason)

    def send_ping(self, data: bytes = b"") -> None:
        self.request.ping_client(data)

    def send_pong(self, data: bytes = b"") -> None:
        """Pongs are answered by the session itself; an unsolicited one is not needed."""

    # -- what a subclass overrides ------------------------------------------------------

    def new_websocket_client(self) -> None:
        raise Exception("WebSocketRequestHandler.new_websocket_client() must be overloaded")

    def validate_connection(self) -> None:
        """The server checked the token before the upgrade."""

    def auth_connection(self) -> None:
        """The server ran the auth plugin before the upgrade."""

    # -- plain HTTP, when the subclass answers it --------------------------------------------

    def handle_http(self, exchange: Any) -> None:
        """Answer the request with do_GET/do_HEAD; what it writes goes to the client."""
        self.rfile = io.BytesIO(b"")
        self.wfile = _ResponseFile(exchange)  # type: ignore[assignment]
        self.close_connection = True
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(405)
        else:
            method()

    def do_GET(self) -> None:
        if self.only_upgrade:
            self.send_error(405)
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.only_upgrade:
            self.send_error(405)
        else:
            super().do_HEAD()

    def list_directory(self, path: Any) -> None:
        """Never a listing (upstream's file_only, always)."""
        self.send_error(404)
        return None

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if self.verbose:
            super().log_request(code, size)

    def handle_websocket(self) -> None:
        """Run new_websocket_client(); a CClose it raises closes the client with its code."""
        self.server.ws_connection = True
        try:
            self.new_websocket_client()
        except self.CClose as exc:
            code, reason = (list(exc.args) + [1000, ""])[:2]
            self.send_close(int(code) if code is not None else 1000, str(reason or ""))


class _ResponseFile:
    """A handler's `wfile` for a plain HTTP request: writes go to the client."""

    def __init__(self, exchange: Any):
        self._exchange = exchange

    def write(self, data: bytes) -> int:
        self._exchange.write(data)
        return len(data)

    def flush(self) -> None:
        """Each write has been handed over already."""


class ClientView:
    """The client as a handler's `self.request`: what upstream's handler methods need."""

    def __init__(self, channel: ClientChannel):
        self._channel = channel

    def receive_messages(self) -> tuple[list[bytes], Closed | None]:
        return self._channel.receive(None)

    def send_messages(self, payloads: list[bytes]) -> None:
        self._channel.send(payloads)

    def close_session(self, code: int, reason: str) -> None:
        self._channel.close(code, reason)

    def ping_client(self, data: bytes) -> None:
        self._channel.ping(data)

    def proxy(self, target: socket.socket) -> Closed:
        return self._channel.proxy(target)

    def getpeername(self) -> Any:
        return self._channel.address

    def setsockopt(self, *args: Any) -> None:
        """Our listener set TCP_NODELAY and keepalive already."""


class WebSockifyServer:
    """Upstream's server base. WebSocketProxy (websocketproxy.py) is the one to build;
    these are the static helpers and exceptions importers use."""

    log_prefix = "websocket"

    class EClose(Exception):
        """Before the upgrade: refuse the client."""

    class Terminate(Exception):
        """Stop the server."""

    @staticmethod
    def get_logger() -> logging.Logger:
        return logging.getLogger(f"{WebSockifyServer.log_prefix}.{WebSockifyServer.__class__.__name__}")

    @staticmethod
    def socket(host: str | None, port: int | str | None = None, connect: bool = False, prefer_ipv6: bool = False,
               unix_socket: str | None = None, unix_socket_mode: int | None = None, unix_socket_listen: bool = False,
               use_ssl: bool = False, tcp_keepalive: bool = True, tcp_keepcnt: int | None = None,
               tcp_keepidle: int | None = None, tcp_keepintvl: int | None = None) -> socket.socket:
        """Upstream's helper: a socket connected to (connect=True) or listening on host:port,
        or on `unix_socket`. Blocking, as upstream's handlers expect."""
        if host == "":
            host = None
        if connect and not (port or unix_socket):
            raise Exception("Connect mode requires a port")
        if not connect and use_ssl:
            raise Exception("SSL only supported in connect mode (for now)")
        if unix_socket:
            return _unix_socket(unix_socket, connect, unix_socket_mode, unix_socket_listen)
        flags = 0 if connect else socket.AI_PASSIVE
        addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP, flags)
        if not addresses:
            raise Exception(f"Could not resolve host '{host}'")
        addresses.sort(key=lambda address: address[0])
        if prefer_ipv6:
            addresses.reverse()
        family, kind, _, _, address = addresses[0]
        sock = socket.socket(family, kind)
        if tcp_keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in ((socket.TCP_KEEPCNT, tcp_keepcnt), (socket.TCP_KEEPIDLE, tcp_keepidle),
                                  (socket.TCP_KEEPINTVL, tcp_keepintvl)):
                if value:
                    sock.setsockopt(socket.IPPROTO_TCP, option, value)
        if connect:
            try:
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
            if use_ssl:
                return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(100)
        return sock


def _unix_socket(path: str, connect: bool, mode: int | None, listen: bool) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if listen:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        old_mask = os.umask(0o777 ^ (mode if mode is not None else 0o600))
        try:
            sock.bind(path)
        finally:
            os.umask(old_mask)
        sock.listen(100)
    else:
        sock.connect(path)
    return sock
