"""`python -m websockify.worker`: one worker process of `websockify --workers N`,
started by the parent (workers/group.py) with its settings and listening sockets.

The parent keeps the process-wide duties: daemon, pid file, systemd, lifetimes,
the wrapped program; a worker only serves clients, until told to stop.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys

from .bootstrap import Environment, Plugins, Stop, connector, handle_signals, load_plugins, run_loop
from .config import Config, Lifetime
from .errors import WebsockifyError
from .metrics import install
from .metrics.prometheus import worker_meter
from .server.server import ProxyServer
from .workers.link import VARIABLES, RemoteTarget, WorkerLink, WorkerSettings

log = logging.getLogger("websockify")


def run_worker() -> int:
    """Serve until stopped; return the process exit code."""
    environment = Environment.read(os.environ)
    settings = WorkerSettings.from_environment(os.environ)
    if settings is None:
        print("websockify.worker: started by websockify --workers, not by hand", file=sys.stderr)
        return 2
    # Read once, then out of our environment: whatever a plugin starts should not
    # inherit the settings (they can hold a token source's or a plugin's secrets).
    for name in VARIABLES:
        os.environ.pop(name, None)
    config = dataclasses.replace(settings.config, daemon=False, pid_file=None,
                                 lifetime=Lifetime(heartbeat_s=settings.config.lifetime.heartbeat_s))
    link = WorkerLink(settings)
    if config.metrics is not None:
        chosen = worker_meter()  # its values go where the parent sums them
        if chosen is not None:
            install(chosen)
    try:
        plugins = load_plugins(config)
        return run_loop(environment, _serve_worker(config, link, plugins))
    except WebsockifyError as exc:
        log.error("worker %d: %s", link.index, exc)
        return exc.exit_code


async def _serve_worker(config: Config, link: WorkerLink, plugins: Plugins) -> int:
    stop = Stop()
    program = RemoteTarget(config.connect_timeout_s) if config.wrap_command else None
    target = program if program is not None else connector(config, plugins.router, link.sockets)
    server = ProxyServer(config, target, link.sockets, plugins.tls, plugins.authenticator, plugins.router,
                         on_session_start=link.session_started, on_session_end=link.session_ended)
    link.start(server.stop_accepting, program)

    def reload(signum: int) -> None:
        server.reload_tls()
        if plugins.router is not None:
            plugins.router.reload()

    handle_signals(stop, [signal.SIGHUP], reload)
    try:
        await server.start(announce=False)
        await stop.event.wait()
        await server.shutdown(config.close_timeout_s)
        return 0
    finally:
        if plugins.router is not None:
            await plugins.router.close()


if __name__ == "__main__":
    sys.exit(run_worker())
