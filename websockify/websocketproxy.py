"""Upstream's `websockify.websocketproxy`: the entry point and the library API.

- `websockify_init()`: what distribution launchers and old console scripts call;
  it runs our command line (arguments from sys.argv).
- `WebSocketProxy(RequestHandlerClass=..., listen_host=..., listen_port=...,
  target_host=..., ...).start_server()`: runs a server from Python with
  upstream's arguments (positional ones too) and attributes. `token_plugin` and
  `auth_plugin` may be a class name (as on the command line) or an object.
- `ProxyRequestHandler`: subclass it and override `new_websocket_client()`, as
  OpenStack's console proxies do; it runs on a thread of its own with
  upstream's methods (websockifyserver.py), and `do_proxy(target)` relays on
  our event loop. A handler that overrides nothing the relay needs is not given
  a thread at all: the server relays natively.
- `select_ssl_version(name)`: upstream's `ssl_options` for a minimum TLS version.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import signal
import socket
import ssl
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

from .addresses import format_host_port
from .errors import ConfigError
from .protocol.http import RequestHead
from .server.handler_http import HttpExchange
from .server.handler_session import ClientChannel
from .websockifyserver import ClientView, WebSockifyRequestHandler, WebSockifyServer

__all__ = ["ProxyRequestHandler", "WebSocketProxy", "select_ssl_version", "websockify_init"]

# upstream keyword → our build_config parameter (None: handled below)
KEYWORDS: dict[str, str | None] = {
    "listen_host": None, "listen_port": None, "target_host": None, "target_port": None,
    "wrap_cmd": None, "source_is_ipv6": "prefer_ipv6", "verbose": "verbose", "daemon": "daemon",
    "traffic": "traffic", "record": "record", "run_once": "run_once", "timeout": "timeout_s",
    "idle_timeout": "idle_timeout_s", "heartbeat": "heartbeat_s", "cert": None, "key": "key",
    "key_password": "key_password", "ssl_only": "ssl_only", "ssl_target": "ssl_target",
    "verify_client": "verify_client", "cafile": "cafile", "ssl_ciphers": "ssl_ciphers",
    "ssl_options": None, "ssl_version": "ssl_version", "unix_listen": "unix_listen",
    "unix_listen_mode": "unix_listen_mode", "unix_target": "unix_target", "inetd": "inetd",
    "web": "web", "web_auth": "web_auth", "file_only": "file_only", "wrap_mode": "wrap_mode",
    "token_plugin": None, "token_source": "token_source", "host_token": "host_token",
    "auth_plugin": None, "auth_source": "auth_source", "log_file": "log_file", "syslog": "syslog",
    "legacy_syslog": "legacy_syslog", "listen_fd": None,
    # Accepted for upstream's callers; keepalive is always on here (see docs/security.md).
    "tcp_keepalive": None, "tcp_keepcnt": None, "tcp_keepidle": None, "tcp_keepintvl": None,
}
# WebSockifyServer.__init__'s positional parameters after RequestHandlerClass, in upstream's order.
POSITIONAL = ("listen_fd", "listen_host", "listen_port", "source_is_ipv6", "verbose", "cert", "key", "key_password",
              "ssl_only", "verify_client", "cafile", "daemon", "record", "web", "web_auth", "file_only", "run_once",
              "timeout", "idle_timeout", "traffic", "tcp_keepalive", "tcp_keepcnt", "tcp_keepidle", "tcp_keepintvl",
              "ssl_ciphers", "ssl_options", "unix_listen", "unix_listen_mode")

SSL_OPTIONS = {
    "default": ssl.OP_ALL,
    "tlsv1_1": ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_TLSv1,
    "tlsv1_2": ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1,
    "tlsv1_3": ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1 | ssl.OP_NO_TLSv1_2,
}


def select_ssl_version(version: str) -> int:
    """Upstream's `ssl_options` for the oldest TLS version allowed; an unknown name
    gets the most secure, with a warning, as upstream."""
    if version in SSL_OPTIONS:
        return SSL_OPTIONS[version]
    fallback = sorted(SSL_OPTIONS)[-1]
    logging.getLogger(WebSocketProxy.log_prefix).warning("TLS version %s unsupported. Falling back to %s",
                                                         version, fallback)
    return SSL_OPTIONS[fallback]


def _ssl_version_of(options: int) -> str:
    """The minimum version that upstream's `ssl_options` bitmask leaves."""
    for name in ("tlsv1_3", "tlsv1_2", "tlsv1_1"):
        if options & SSL_OPTIONS[name] == SSL_OPTIONS[name]:
            return name
    return "default"


def websockify_init() -> None:
    """Upstream's console entry point: our command line."""
    from .cli import main
    main()


class ProxyRequestHandler(WebSockifyRequestHandler):
    """Upstream's handler: override `new_websocket_client()` to choose and prepare the
    target yourself, then call `self.do_proxy(target_socket)`."""

    buffer_size = 65536
    traffic_legend = "\nTraffic Legend:\n    }  - Client receive\n    {  - Target receive\n"

    def new_websocket_client(self) -> None:
        """Upstream's default: connect to the server's target and relay."""
        server = self.server
        target = WebSockifyServer.socket(server.target_host, server.target_port, connect=True,
                                         use_ssl=bool(server.ssl_target), unix_socket=server.unix_target)
        self.do_proxy(target)

    def do_proxy(self, target: socket.socket) -> None:
        """Relay between the client and `target` until either ends; then, as upstream,
        raise CClose with how the session closed."""
        closed = self.request.proxy(target)
        raise self.CClose(closed.code if closed.code is not None else 1000, closed.reason)

    def get_target(self, target_plugin: Any) -> Any:
        """Upstream's token lookup from the path (or the Host header with host_token)."""
        if self.host_token:
            token = self.headers.get("Host")
            if token:
                token = token.partition(":")[0]
        else:
            values = parse_qs(urlparse(self.path)[4]).get("token")
            token = values[0].rstrip("\n") if values else None
        if token is None:
            raise self.server.EClose("Token not present")
        result = target_plugin.lookup(token)
        if result is None:
            raise self.server.EClose("Token not found")
        return result

    def send_auth_error(self, ex: Any) -> None:
        """The server answers a refused client itself, before the upgrade."""


_HTTP_METHODS = ("send_head", "translate_path", "send_error", "do_GET", "do_HEAD", "list_directory")


def _overrides_http(handler_class: type) -> bool:
    """Does the class answer plain HTTP requests its own way (nova's send_head)?"""
    return any(getattr(handler_class, name) is not getattr(ProxyRequestHandler, name) for name in _HTTP_METHODS)


def _overrides_relay(handler_class: type) -> bool:
    """Does the class change what happens to an upgraded client? Else no thread is needed."""
    return any(getattr(handler_class, name) is not getattr(ProxyRequestHandler, name)
               for name in ("new_websocket_client", "do_proxy", "handle_websocket", "__init__"))


class WebSocketProxy(WebSockifyServer):
    """Upstream's server object, with its arguments; `start_server()` runs until stopped."""

    buffer_size = 65536
    # Upstream's attributes (the keyword arguments), read by handlers as self.server.<name>.
    ATTRIBUTES = ("target_host", "target_port", "wrap_cmd", "wrap_mode", "unix_target", "ssl_target", "heartbeat",
                  "token_plugin", "host_token", "auth_plugin", "listen_fd", "listen_host", "listen_port",
                  "unix_listen", "unix_listen_mode", "cert", "key", "key_password", "ssl_only", "ssl_ciphers",
                  "verify_client", "cafile", "daemon", "record", "web", "web_auth", "file_only", "run_once",
                  "timeout", "idle_timeout", "traffic", "verbose", "tcp_keepalive", "tcp_keepcnt", "tcp_keepidle",
                  "tcp_keepintvl")
    web: Any
    listen_fd: Any

    def __init__(self, RequestHandlerClass: type = ProxyRequestHandler, *args: Any, **kwargs: Any):
        if len(args) > len(POSITIONAL):
            raise TypeError(f"WebSocketProxy: at most {len(POSITIONAL) + 1} positional arguments")
        for name, value in zip(POSITIONAL, args):
            if name in kwargs:
                raise TypeError(f"WebSocketProxy: {name} given twice")
            kwargs[name] = value
        unknown = sorted(set(kwargs) - set(KEYWORDS))
        if unknown:
            raise TypeError(f"WebSocketProxy: unsupported keyword(s): {', '.join(unknown)}")
        if not (isinstance(RequestHandlerClass, type) and issubclass(RequestHandlerClass, ProxyRequestHandler)):
            raise TypeError("WebSocketProxy: RequestHandlerClass must subclass websockify.ProxyRequestHandler")
        self.RequestHandlerClass = RequestHandlerClass
        self._kwargs = kwargs
        for name in self.ATTRIBUTES:
            setattr(self, name, kwargs.get(name))
        self.prefer_ipv6 = kwargs.get("source_is_ipv6", False)
        self.ssl_options = kwargs.get("ssl_options", 0)
        self.only_upgrade = not self.web
        self.handler_id = 0
        self.ws_connection = False
        self.terminating = False
        self.logger = self.get_logger()
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()

    # -- what start_server() runs -------------------------------------------------------

    def _config_and_plugins(self) -> tuple[Any, Any, Any]:
        from .config import build_config

        kwargs = dict(self._kwargs)
        options: dict[str, Any] = {}
        for keyword, value in kwargs.items():
            parameter = KEYWORDS[keyword]
            if parameter is not None and value is not None:
                options[parameter] = value
        if isinstance(options.get("unix_listen_mode"), int):
            options["unix_listen_mode"] = format(options["unix_listen_mode"], "o")
        if kwargs.get("ssl_options"):
            options["ssl_version"] = _ssl_version_of(int(kwargs["ssl_options"]))
        cert = kwargs.get("cert")
        # Upstream's rule: TLS when the certificate exists (ssl_only insists on it).
        if cert and (os.path.exists(cert) or kwargs.get("ssl_only")):
            options["cert"] = cert
        if kwargs.get("listen_fd") is not None:
            options["inetd"] = True
        if not options.get("record"):
            options.pop("record", None)
        if not options.get("web"):
            options.pop("web", None)
        arguments: list[str] = []
        if kwargs.get("listen_port") is not None and kwargs.get("listen_fd") is None:
            arguments.append(format_host_port(kwargs.get("listen_host") or "", int(kwargs["listen_port"]))
                             if kwargs.get("listen_host") else str(kwargs["listen_port"]))
        if kwargs.get("target_host") and kwargs.get("target_port"):
            arguments.append(format_host_port(kwargs["target_host"], int(kwargs["target_port"])))
        # A handler class that chooses its targets (nova's) gives none: stand one in for the
        # checks, then take it out again.
        chosen_by_handler = (_overrides_relay(self.RequestHandlerClass) and len(arguments) == 1
                             and not any(kwargs.get(name) for name in ("unix_target", "token_plugin", "wrap_cmd")))
        if chosen_by_handler:
            arguments.append("127.0.0.1:9")
        plugins = {}
        for name in ("token_plugin", "auth_plugin"):
            value = kwargs.get(name)
            if isinstance(value, str):
                options[name] = value
            elif value is not None:
                options[name] = f"{type(value).__module__}.{type(value).__qualname__}"
                plugins[name] = value
        config = build_config(arguments=tuple(arguments), wrap_command=tuple(kwargs.get("wrap_cmd") or ()),
                              **options)
        if chosen_by_handler:
            config = dataclasses.replace(config, target=None)
        return config, plugins.get("token_plugin"), plugins.get("auth_plugin")

    # -- the server runs the handler class through these (server/handler_threads.py) ---------

    @property
    def serves_websocket(self) -> bool:
        return _overrides_relay(self.RequestHandlerClass)

    @property
    def serves_http(self) -> bool:
        return bool(self.web) and _overrides_http(self.RequestHandlerClass)

    def _handler(self, request: Any, address: Any, head: RequestHead) -> Any:
        with self._ids_lock:  # upstream's handler reads its id from the server as it is built
            self.handler_id = next(self._ids)
            handler = self.RequestHandlerClass(request, address, self)
        handler._accept_request(head)
        return handler

    def serve_websocket(self, channel: ClientChannel, head: RequestHead) -> None:
        """One upgraded client, on its thread: upstream's handler, built and run."""
        self._handler(ClientView(channel), channel.address, head).handle_websocket()

    def serve_http(self, exchange: HttpExchange, head: RequestHead) -> None:
        """One plain GET or HEAD, on its thread, by the handler's own methods."""
        self._handler(exchange, exchange.address, head).handle_http(exchange)

    def start_server(self) -> int:
        """Run until stopped (SIGTERM/SIGINT, a lifetime option, terminate()); the exit code."""
        from .app import run

        if self.listen_fd is not None and self.listen_fd != 0:
            os.dup2(self.listen_fd, 0)  # our inetd mode serves the socket on stdin, as upstream's launcher passed it
        config, token_plugin, auth_plugin = self._config_and_plugins()
        if config.workers != 1:
            raise ConfigError("--workers: a RequestHandlerClass runs in this process only")
        self.started()
        # Upstream's server never set up logging: a program that did (nova's oslo.log) keeps its own.
        return run(config, token_plugin=token_plugin, auth_plugin=auth_plugin,
                   handler=self if self.serves_websocket or self.serves_http else None,
                   configure_logging=not logging.getLogger().handlers)

    def started(self) -> None:
        """Upstream's hook, called before serving (after daemonizing there; here before)."""

    def terminate(self) -> None:
        """Stop serving: the server shuts down as on SIGTERM."""
        if not self.terminating:
            self.terminating = True
            signal.raise_signal(signal.SIGTERM)  # the loop's handler takes it, from any thread
