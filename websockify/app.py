"""Composition root: logging, the event loop, signal capture, the server, the exit code."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Callable

from .config import Config
from .errors import StartupError, WebsockifyError
from .proxy.target import AddressConnector
from .server.server import ProxyServer

log = logging.getLogger("websockify")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(config))
    except WebsockifyError as exc:
        print(f"websockify: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)


async def _serve(config: Config) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        # Only record; the loop below acts. A second Ctrl-C forces the exit.
        if received and signum == signal.SIGINT:
            raise SystemExit(128 + signum)
        received.append(signum)
        stop.set()

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)

    if config.token_plugin is not None:
        raise StartupError("token plugins are not available in this version yet")
    if config.wrap_command:
        raise StartupError("program wrapping is not available in this version yet")
    assert config.target is not None
    server = ProxyServer(config, AddressConnector(config.target, config.connect_timeout_s))
    server.start()
    await stop.wait()
    log.info("received %s: shutting down", signal.Signals(received[0]).name)
    await server.shutdown(config.close_timeout_s)
    return 0
