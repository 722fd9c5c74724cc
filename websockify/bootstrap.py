"""What every websockify process sets up the same way: the parent (app.py) and
each worker of --workers N (worker.py).

The environment variables are read here once, at the edge; the plugins, TLS
and logs are loaded before the event loop starts, so a failure is one line;
signal handlers only record what happened (_Stop) or call back on the loop.
"""
from __future__ import annotations

import asyncio
import os
import signal
import ssl
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterable, Mapping

from .addresses import TcpAddress
from .config import Config
from .errors import ConfigError
from .fdlimit import raise_file_limit
from .proxy.own_address import OwnListeners
from .proxy.plugins import Authenticator, load_authenticator
from .proxy.routing import RoutedTargets, TokenRouter, load_token_plugin
from .proxy.target import AddressConnector, Connector
from .server.handler_threads import HandlerTargets, HandlerThreads, RequestHandlers
from .server.listener import ListeningSocket
from .server.tls import server_context, target_context
from .service.logs import setup_logging

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Environment:
    """websockify's own environment variables (docs/options.md, "Environment")."""

    event_loop: str = "auto"  # WEBSOCKIFY_EVENT_LOOP: "asyncio" refuses uvloop
    rebind_so: str | None = None  # WEBSOCKIFY_REBIND_SO: the rebind.so to preload

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> "Environment":
        return cls(event_loop=environ.get("WEBSOCKIFY_EVENT_LOOP", "auto"),
                   rebind_so=environ.get("WEBSOCKIFY_REBIND_SO") or None)


def loop_factory(environment: Environment) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed (about 3x the download throughput of the stdlib
    loop); WEBSOCKIFY_EVENT_LOOP=asyncio selects the standard loop."""
    if environment.event_loop != "asyncio":
        try:
            import uvloop
            return uvloop.new_event_loop
        except ImportError:
            pass
    return asyncio.new_event_loop


def run_loop(environment: Environment, main: Coroutine[Any, Any, int]) -> int:
    with asyncio.Runner(loop_factory=loop_factory(environment)) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class Plugins:
    """What a process that serves clients loads before its loop starts."""

    tls: ssl.SSLContext | None
    authenticator: Authenticator | None
    router: TokenRouter | None
    handlers: HandlerThreads | None = None  # upstream's RequestHandlerClass, when it serves clients itself


def load_plugins(config: Config, token_plugin: Any = None, auth_plugin: Any = None,
                 handler: RequestHandlers | None = None, configure_logging: bool = True) -> Plugins:
    """Logs, the file limit, and everything that can refuse the settings: the
    recording path, the certificate, the plugins. Objects built already (upstream's
    WebSocketProxy API) replace loading the plugins by name; `handler` is upstream's
    RequestHandlerClass, run on threads (handler_threads.py). A program that
    embeds us and has set up its logging says `configure_logging=False`."""
    if configure_logging or config.logs.log_file or config.logs.syslog:
        setup_logging(config.logs)
    raise_file_limit()  # two descriptors per client: 1024 would cap us near 500 clients
    _check_record_path(config.record)
    tls = server_context(config.tls) if config.tls.enabled else None
    return Plugins(tls, _load_authenticator(config, auth_plugin), _load_router(config, token_plugin),
                   HandlerThreads(handler) if handler is not None else None)


def _load_authenticator(config: Config, plugin: Any) -> Authenticator | None:
    if config.auth_plugin is None:
        return None
    host = config.target.host if isinstance(config.target, TcpAddress) else None
    port = config.target.port if isinstance(config.target, TcpAddress) else None
    if plugin is not None:
        return Authenticator(plugin, host, port)
    return load_authenticator(config.auth_plugin, config.auth_source, host, port)


def _load_router(config: Config, plugin: Any) -> TokenRouter | None:
    if config.token_plugin is None:
        return None
    if plugin is None:
        plugin = load_token_plugin(config.token_plugin, config.token_source)
    return TokenRouter(plugin, config.connect_timeout_s, target_context() if config.ssl_target else None)


def _check_record_path(prefix: str | None) -> None:
    if prefix is None:
        return
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--record: cannot write recordings into {directory}")


def connector(config: Config, router: TokenRouter | None, listening: Iterable[ListeningSocket] = ()) -> Connector:
    """The target when no wrapped program is: one address, or the one a token names.
    Neither may be one of `listening`, our own sockets (own_address.py)."""
    own = OwnListeners(listening.sock for listening in listening)
    if router is not None:
        router.own = own
        return RoutedTargets(config.token_plugin or "")
    if config.target is None:  # only an embedding program's handler class leaves it out
        return HandlerTargets()
    return AddressConnector(config.target, config.connect_timeout_s, target_context() if config.ssl_target else None,
                            own=own)


class Stop:
    """Why we are stopping: a signal (handlers only record it) or a lifetime option."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.reason = ""
        self.event = asyncio.Event()
        self.force = asyncio.Event()  # a second stop signal

    def on_signal(self, signum: int) -> None:
        if self.signals:
            self.force.set()
        self.signals.append(signum)
        self.event.set()

    def by_lifetime(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    @property
    def signal(self) -> int:
        return self.signals[0] if self.signals else signal.SIGTERM

    def describe(self) -> str:
        return f"received {signal.Signals(self.signals[0]).name}" if self.signals else self.reason


def handle_signals(stop: Stop, others: Iterable[int], on_other: Callable[[int], None]) -> None:
    """SIGINT/SIGTERM stop us (a second one forces); each of `others` calls
    `on_other(signum)` on the loop. Before anything starts: a default SIGHUP would kill us."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.on_signal, signum)
    for other in others:
        loop.add_signal_handler(other, on_other, other)
