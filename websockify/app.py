"""Composition root: logging, the event loop, signal capture, the server, the exit code."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from .config import Config, TcpAddress
from .errors import ConfigError, StartupError, WebsockifyError
from .fdlimit import raise_file_limit
from .proxy.plugins import Authenticator, load_authenticator
from .proxy.target import AddressConnector
from .server.server import ProxyServer
from .server.tls import server_context, target_context

log = logging.getLogger("websockify")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s websockify[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # websockets logs every handshake at INFO; our own connection line says more.
    logging.getLogger("websockets").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed (about 3x the download throughput of the stdlib
    loop); WEBSOCKIFY_EVENT_LOOP=asyncio selects the standard loop."""
    if os.environ.get("WEBSOCKIFY_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
            return uvloop.new_event_loop
        except ImportError:
            pass
    return asyncio.new_event_loop


def run(config: Config) -> int:
    """Run until stopped; return the process exit code."""
    setup_logging(config.verbose)
    raise_file_limit()  # two descriptors per client: 1024 would cap us near 500 clients
    try:
        _check_record_path(config.record)
        tls = server_context(config.tls) if config.tls.enabled else None
        authenticator = _load_authenticator(config)
        library = _prepare_wrapping(config) if config.wrap_command else None
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(config, library, tls, authenticator))
    except WebsockifyError as exc:
        print(f"websockify: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _load_authenticator(config: Config) -> Optional[Authenticator]:
    if config.auth_plugin is None:
        return None
    host = config.target.host if isinstance(config.target, TcpAddress) else None
    port = config.target.port if isinstance(config.target, TcpAddress) else None
    return load_authenticator(config.auth_plugin, config.auth_source, host, port)


def _check_record_path(prefix: Optional[str]) -> None:
    if prefix is None:
        return
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--record: cannot write recordings into {directory}")


def _prepare_wrapping(config: Config) -> Path:
    """Everything that can refuse a wrapped command, before anything starts."""
    from .wrap.preload_check import check_preloadable
    from .wrap.rebind import find_rebind

    check_preloadable(config.wrap_command[0])
    return find_rebind()


class _Signals:
    """Signal handlers only record; the main coroutine acts."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.stop = asyncio.Event()
        self.force = asyncio.Event()  # a second stop signal

    def on_stop(self, signum: int) -> None:
        if self.received:
            self.force.set()
        self.received.append(signum)
        self.stop.set()


async def _serve(config: Config, library: Optional[Path], tls: Optional[ssl.SSLContext],
                 authenticator: Optional[Authenticator]) -> int:
    loop = asyncio.get_running_loop()
    signals = _Signals()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, signals.on_stop, signum)

    if config.token_plugin is not None:
        raise StartupError("token plugins are not available in this version yet")
    if library is not None:
        return await _serve_wrapped(config, library, signals, tls, authenticator)
    assert config.target is not None
    connector = AddressConnector(config.target, config.connect_timeout_s,
                                 target_context() if config.ssl_target else None)
    server = ProxyServer(config, connector, tls, authenticator)
    server.start()
    loop.add_signal_handler(signal.SIGHUP, server.reload_tls)
    await signals.stop.wait()
    log.info("received %s: shutting down", signal.Signals(signals.received[0]).name)
    shutdown = loop.create_task(server.shutdown(config.close_timeout_s))
    forced = loop.create_task(signals.force.wait())
    await asyncio.wait([shutdown, forced], return_when=asyncio.FIRST_COMPLETED)
    if not shutdown.done():
        log.warning("second signal: exiting without waiting for sessions to close")
        shutdown.cancel()
    forced.cancel()
    return 0


async def _serve_wrapped(config: Config, library: Path, signals: _Signals,
                         tls: Optional[ssl.SSLContext], authenticator: Optional[Authenticator]) -> int:
    from .wrap.service import WrappedService

    loop = asyncio.get_running_loop()
    service = WrappedService(config, library)
    server = ProxyServer(config, service, tls, authenticator)
    server.start()  # the public port is ours before the program can try to take it
    try:
        service.start()

        def on_forwarded(signum: int) -> None:
            if signum == signal.SIGHUP:
                server.reload_tls()
            service.forward(signum)

        for signum in _FORWARDED_SIGNALS:
            loop.add_signal_handler(signum, on_forwarded, signum)
        stop_wait: asyncio.Future[Any] = loop.create_task(signals.stop.wait())
        await asyncio.wait([stop_wait, service.exited], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if service.exited.done():
            code = service.exited.result()
            await server.shutdown(config.close_timeout_s)
            return code
        stop_signal = signals.received[0]
        log.info("received %s: stopping the wrapped service", signal.Signals(stop_signal).name)
        server.stop_accepting()
        code = await service.stop(stop_signal, signals.force)
        await server.shutdown(config.close_timeout_s)
        return code
    finally:
        service.close()
