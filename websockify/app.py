"""Composition root: daemon mode, logging, listening sockets, the event loop,
signals, systemd, lifetimes and the exit code.

Order matters: paths are made absolute and a live pid file refused while the
command still runs in the user's shell; then, with -D, the process detaches;
then logs are opened and everything that can fail at start is tried, each
failure reported as one line (to the waiting command line, under -D).
What a worker process of --workers N sets up the same way is in bootstrap.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .addresses import TcpAddress
from .bootstrap import Environment, Plugins, Stop, connector, handle_signals, load_plugins, run_loop
from .config import Config
from .errors import ConfigError, WebsockifyError
from .metrics.service import MetricsService
from .server.handler_threads import RequestHandlers
from .server.interface import Server
from .server.listener import ListeningSocket, adopt_listener, open_listener, open_unix_listener
from .server.server import ProxyServer
from .service.activation import take_listen_fds
from .service.daemon import NO_REPORT, StartupReport, daemonize
from .service.lifetime import Lifetimes
from .service.pidfile import PidFile
from .service.systemd_notify import Notifier
from .workers.group import WorkerGroup, available_cpus
from .wrap.program import WrappedProgram
from .wrap.reaper import ChildReaper
from .wrap.supervisor import ProgramState

log = logging.getLogger("websockify")

_FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def absolute_paths(config: Config, cwd: str) -> Config:
    """Every path the user gave, as meant in the shell that started us (-D changes to /)."""
    def absolute(path: str | None) -> str | None:
        return os.path.join(cwd, path) if path and not os.path.isabs(path) else path

    tls = dataclasses.replace(config.tls, cert=absolute(config.tls.cert), key=absolute(config.tls.key),
                              cafile=absolute(config.tls.cafile))
    logs = dataclasses.replace(config.logs, log_file=absolute(config.logs.log_file))
    token_source = config.token_source
    if token_source and os.path.exists(os.path.join(cwd, token_source)):
        token_source = absolute(token_source)  # a file or directory; a URL or Redis address is left alone
    target = config.target
    if target is not None and not isinstance(target, TcpAddress):
        target = dataclasses.replace(target, path=absolute(target.path) or target.path)
    return dataclasses.replace(
        config, tls=tls, logs=logs, target=target, token_source=token_source, web_dir=absolute(config.web_dir),
        record=absolute(config.record), pid_file=absolute(config.pid_file),
        unix_listen=absolute(config.unix_listen), working_dir=cwd)


@dataclass(frozen=True)
class _Prepared:
    """Everything run() set up before the event loop, for _serve()."""

    config: Config
    sockets: list[ListeningSocket]
    library: Path | None  # rebind.so, when wrapping
    plugins: Plugins
    notifier: Notifier
    report: StartupReport
    pid_file: PidFile | None


def run(config: Config, token_plugin: Any = None, auth_plugin: Any = None,
        handler: RequestHandlers | None = None, configure_logging: bool = True) -> int:
    """Run until stopped; return the process exit code. Plugin objects built
    already (upstream's WebSocketProxy API) replace loading them by name;
    `handler` is upstream's RequestHandlerClass, run on threads (handler_threads.py);
    `configure_logging=False` leaves an embedding program's logging as it set it."""
    environment = Environment.read(os.environ)
    config = absolute_paths(config, os.getcwd())
    pid_file = PidFile(config.pid_file) if config.pid_file else None
    report = NO_REPORT
    try:
        if pid_file is not None:
            pid_file.check()  # while the user still sees our output
        notifier = Notifier.from_environment()
        inherited = take_listen_fds()
        if config.daemon:
            report = daemonize()
        plugins = load_plugins(config, token_plugin, auth_plugin, handler, configure_logging)
        library = _prepare_wrapping(config, environment) if config.wrap_command else None
        sockets = _listening_sockets(config, inherited)
        if config.wrap_command:
            config = dataclasses.replace(config, listen=_public_address(config, sockets))
        prepared = _Prepared(config, sockets, library, plugins, notifier, report, pid_file)
        return run_loop(environment, _serve(prepared))
    except WebsockifyError as exc:
        line = f"websockify: error: {exc}"
        print(line, file=sys.stderr)
        if config.daemon:
            log.error("%s", exc)
        report.failed(exc.exit_code, line)
        return exc.exit_code
    finally:
        if pid_file is not None:
            pid_file.remove()


def _prepare_wrapping(config: Config, environment: Environment) -> Path:
    """Everything that can refuse a wrapped command, before anything starts."""
    from .wrap.preload_check import check_preloadable
    from .wrap.rebind import find_rebind

    check_preloadable(config.wrap_command[0])
    return find_rebind(environment.rebind_so)


def _listening_sockets(config: Config, inherited: list[tuple[int, str]]) -> list[ListeningSocket]:
    """From systemd, from inetd, a Unix socket, or the TCP source address."""
    if inherited:
        sockets = [adopt_listener(fd, f"socket activation ({name})") for fd, name in inherited]
        if config.listen is not None and not any(_matches(config.listen, s) for s in sockets):
            raise ConfigError(f"source address {config.listen} is not among the sockets systemd passed: "
                              f"{', '.join(str(s) for s in sockets)}")
        return sockets
    if config.inetd:
        return [adopt_listener(0, "--inetd")]
    if config.unix_listen is not None:
        return [open_unix_listener(config.unix_listen, config.unix_listen_mode, config.listen_backlog)]
    assert config.listen is not None
    return [ListeningSocket(open_listener(config.listen, config.prefer_ipv6, config.listen_backlog))]


def _matches(address: TcpAddress, listening: ListeningSocket) -> bool:
    if listening.port != address.port:
        return False
    host = listening.sock.getsockname()[0]
    return address.host in ("", host) or (address.host in ("0.0.0.0", "::") and host in ("0.0.0.0", "::"))


def _public_address(config: Config, sockets: list[ListeningSocket]) -> TcpAddress:
    """The port a wrapped program binds: the source address, or the inherited TCP socket's."""
    if config.listen is not None:
        return config.listen
    ports = [s.port for s in sockets if s.port is not None]
    if not ports:
        raise ConfigError("a wrapped command needs a TCP port to move; the inherited sockets have none")
    return TcpAddress("", ports[0])


async def _serve(prepared: _Prepared) -> int:
    config, plugins, notifier = prepared.config, prepared.plugins, prepared.notifier
    loop = asyncio.get_running_loop()
    stop = Stop()
    reaper = ChildReaper(loop)  # the one owner of child exits in this process
    program = WrappedProgram(config, prepared.library, reaper) if prepared.library is not None else None
    status = _Status(notifier, prepared.sockets, program)
    workers = config.workers or available_cpus()
    observed = _metrics(config, program, workers) if config.metrics is not None else None
    server: Server

    def stop_accepting() -> None:  # the server is built below, with the lifetimes' hooks
        if observed is not None:
            observed.readiness.stopping = True
        server.stop_accepting()

    lifetimes = Lifetimes(config.lifetime, stop.by_lifetime, stop_accepting, status.sessions_changed)
    try:
        server = _server(prepared, reaper, program, lifetimes, observed, workers)
    except BaseException:
        if observed is not None:
            observed.close()  # its workers' directory
        raise
    notifier.start_watchdog()

    def reload_and_forward(signum: int) -> None:
        if program is not None:
            program.forward(signum)
        if signum == signal.SIGHUP:
            notifier.reloading()
            server.reload_tls()  # workers reload their own certificate and tokens
            if plugins.router is not None and isinstance(server, ProxyServer):
                plugins.router.reload()
            status.reloaded()

    handle_signals(stop, _FORWARDED_SIGNALS, reload_and_forward)
    try:
        if observed is not None:
            await observed.start()
        await server.start()  # the public port is ours before a wrapped program can try to take it
        if observed is not None:
            observed.readiness.listening = True
        if program is not None:
            program.start()
        if prepared.pid_file is not None:
            prepared.pid_file.write()
        prepared.report.ready()
        lifetimes.start()
        if program is None:
            status.ready()
            await stop.event.wait()
            code = 0
        else:
            code = await _run_wrapped(program, stop, status)
        log.info("%s: shutting down", stop.describe() if stop.event.is_set() else "wrapped service ended")
        notifier.stopping()
        if observed is not None:
            observed.readiness.stopping = True  # a balancer sends new clients elsewhere from now on
        await _shut_down(server, config.close_timeout_s, stop)
        return code
    finally:
        if observed is not None:
            observed.close()
        lifetimes.close()
        status.close()
        notifier.close()
        if plugins.router is not None:
            await plugins.router.close()
        if program is not None:
            program.detach()
            await asyncio.to_thread(program.close)  # waits for the watchdog process: not on the loop
        reaper.close()
        for listening in prepared.sockets:
            listening.close()


def _metrics(config: Config, program: WrappedProgram | None, workers: int) -> MetricsService:
    """--metrics: the meter, /metrics, /healthz and /readyz; the wrapped program's state in both."""
    assert config.metrics is not None
    state = ((lambda: program.target_state()[0]), ProgramState.READY) if program is not None else None
    return MetricsService(config.metrics, state, workers=workers > 1)


def _server(prepared: _Prepared, reaper: ChildReaper, program: WrappedProgram | None,
            lifetimes: Lifetimes, observed: MetricsService | None, workers: int) -> Server:
    """One process serving the clients, or a group of `workers` worker processes."""
    config = prepared.config
    if workers > 1:
        lifetime = config.lifetime
        counting = prepared.notifier.enabled or bool(lifetime.idle_timeout_s or lifetime.timeout_s or lifetime.run_once)
        group = WorkerGroup(config, prepared.sockets, workers, reaper, program, report_sessions=counting,
                            on_session_start=lifetimes.session_started, on_session_end=lifetimes.session_ended,
                            environment=observed.worker_environment() if observed is not None else None,
                            on_exit=observed.exposition.process_ended if observed is not None else None)
        if observed is not None:
            observed.watch_workers(group.processes)
        return group
    plugins = prepared.plugins
    target = program if program is not None else connector(config, plugins.router, prepared.sockets)
    return ProxyServer(config, target, prepared.sockets, plugins.tls, plugins.authenticator, plugins.router,
                       on_session_start=lifetimes.session_started, on_session_end=lifetimes.session_ended,
                       handlers=plugins.handlers)


async def _shut_down(server: Server, timeout_s: float, stop: Stop) -> None:
    """Close the sessions, unless a second stop signal says not to wait."""
    loop = asyncio.get_running_loop()
    shutdown = loop.create_task(server.shutdown(timeout_s))
    forced = loop.create_task(stop.force.wait())
    await asyncio.wait([shutdown, forced], return_when=asyncio.FIRST_COMPLETED)
    if not shutdown.done():
        log.warning("second signal: exiting without waiting for sessions to close")
        shutdown.cancel()
    forced.cancel()


async def _run_wrapped(program: WrappedProgram, stop: Stop, status: "_Status") -> int:
    """Until the program ends (its status is ours) or we are stopped (stop it first)."""
    ready = asyncio.ensure_future(program.wait_ready())

    def announce(done: "asyncio.Future[None]") -> None:
        if not done.cancelled():  # cancelled: stopped before the program was ready
            status.ready()

    ready.add_done_callback(announce)
    stopped = asyncio.ensure_future(stop.event.wait())
    waiting: list[asyncio.Future[Any]] = [stopped, program.exited]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
        stopped.cancel()
    if program.exited.done():
        return program.exited.result()
    log.info("%s: stopping the wrapped service", stop.describe())
    code = await program.stop(stop.signal, stop.force)
    return code if stop.signals else 0  # ending by a lifetime option is a success


class _Status:
    """What `systemctl status` shows: where we listen, how many sessions, the program's state."""

    _EVERY_S = 1.0  # at most one update a second, however busy

    def __init__(self, notifier: Notifier, sockets: list[ListeningSocket], program: WrappedProgram | None):
        self._notifier = notifier
        self._program = program
        self._sessions = 0
        self._pending: asyncio.TimerHandle | None = None
        self._is_ready = False
        # Named now: the sockets are closed when accepting stops (--timeout, shutdown).
        self._where = ", ".join(str(s) for s in sockets)

    def text(self) -> str:
        parts = [f"listening on {self._where}", f"{self._sessions} session{'' if self._sessions == 1 else 's'}"]
        if self._program is not None:
            parts.append(self._program.status_text())
        return "; ".join(parts)

    def ready(self) -> None:
        self._is_ready = True
        if self._notifier.enabled:
            self._notifier.ready(self.text())

    def reloaded(self) -> None:
        """After RELOADING=1: READY=1 again, unless we were not ready before."""
        if self._is_ready:
            self.ready()

    def sessions_changed(self, sessions: int) -> None:
        self._sessions = sessions
        if self._notifier.enabled and self._is_ready and self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self._EVERY_S, self._update)

    def _update(self) -> None:
        self._pending = None
        self._notifier.status(self.text())

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
