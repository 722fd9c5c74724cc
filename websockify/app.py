"""Composition root: daemon mode, logging, listening sockets, the event loop,
signals, systemd, lifetimes and the exit code.

Order matters: paths are made absolute and a live pid file refused while the
command still runs in the user's shell; then, with -D, the process detaches;
then logs are opened and everything that can fail at start is tried, each
failure reported as one line (to the waiting command line, under -D).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from .addresses import TcpAddress
from .config import Config, Lifetime
from .errors import ConfigError, WebsockifyError
from .fdlimit import raise_file_limit
from .proxy.plugins import Authenticator, load_authenticator
from .proxy.routing import RoutedTargets, TokenRouter, load_token_plugin
from .proxy.target import AddressConnector, Connector
from .server.listener import ListeningSocket, adopt_listener, open_listener, open_unix_listener
from .server.server import ProxyServer
from .server.tls import server_context, target_context
from .service.activation import take_listen_fds
from .service.daemon import NO_REPORT, StartupReport, daemonize
from .service.lifetime import Lifetimes
from .service.logs import setup_logging
from .service.notify import Notifier
from .service.pidfile import PidFile
from .service.workers import WorkerGroup, WorkerLink, available_cpus

if TYPE_CHECKING:
    from .wrap.service import WrappedService

log = logging.getLogger("websockify")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


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


def absolute_paths(config: Config, cwd: str) -> Config:
    """Every path the user gave, as meant in the shell that started us (-D changes to /)."""
    def absolute(path: Optional[str]) -> Optional[str]:
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


def run(config: Config, token_plugin: Any = None, auth_plugin: Any = None) -> int:
    """Run until stopped; return the process exit code. Plugin objects built
    already (upstream's WebSocketProxy API) replace loading them by name."""
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
        setup_logging(config.logs)
        raise_file_limit()  # two descriptors per client: 1024 would cap us near 500 clients
        _check_record_path(config.record)
        tls = server_context(config.tls) if config.tls.enabled else None
        authenticator = _load_authenticator(config, auth_plugin)
        router = _load_router(config, token_plugin)
        library = _prepare_wrapping(config) if config.wrap_command else None
        sockets = _listening_sockets(config, inherited)
        if config.wrap_command:
            config = dataclasses.replace(config, listen=_public_address(config, sockets))
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(config, sockets, library, tls, authenticator, router, notifier, report,
                                     pid_file))
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


def _load_authenticator(config: Config, plugin: Any) -> Optional[Authenticator]:
    if config.auth_plugin is None:
        return None
    host = config.target.host if isinstance(config.target, TcpAddress) else None
    port = config.target.port if isinstance(config.target, TcpAddress) else None
    if plugin is not None:
        return Authenticator(plugin, host, port)
    return load_authenticator(config.auth_plugin, config.auth_source, host, port)


def _load_router(config: Config, plugin: Any) -> Optional[TokenRouter]:
    if config.token_plugin is None:
        return None
    if plugin is None:
        plugin = load_token_plugin(config.token_plugin, config.token_source)
    return TokenRouter(plugin, config.connect_timeout_s, target_context() if config.ssl_target else None)


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


class _Stop:
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


async def _serve(config: Config, sockets: list[ListeningSocket], library: Optional[Path],
                 tls: Optional[ssl.SSLContext], authenticator: Optional[Authenticator],
                 router: Optional[TokenRouter], notifier: Notifier, report: StartupReport,
                 pid_file: Optional[PidFile]) -> int:
    loop = asyncio.get_running_loop()
    stop = _Stop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.on_signal, signum)
    service: Optional[WrappedService] = None
    if library is not None:
        from .wrap.service import WrappedService
        service = WrappedService(config, library)
    server: "ProxyServer | WorkerGroup"
    workers = config.workers or available_cpus()
    if workers > 1:
        lifetime = config.lifetime
        counting = notifier.enabled or bool(lifetime.idle_timeout_s or lifetime.timeout_s or lifetime.run_once)
        server = WorkerGroup(config, sockets, workers, service, report_sessions=counting)
    else:
        connector = service if service is not None else _connector(config, router)
        server = ProxyServer(config, connector, sockets, tls, authenticator, router)
    status = _Status(notifier, server, service)
    lifetimes = Lifetimes(config.lifetime, stop.by_lifetime, server.stop_accepting, status.sessions_changed)
    server.on_session_start = lifetimes.session_started
    server.on_session_end = lifetimes.session_ended
    notifier.start_watchdog()

    def reload_and_forward(signum: int) -> None:
        if service is not None:
            service.forward(signum)
        if signum == signal.SIGHUP:
            notifier.reloading()
            server.reload_tls()  # workers reload their own certificate and tokens
            if router is not None and isinstance(server, ProxyServer):
                router.reload()
            status.reloaded()

    for signum in _FORWARDED_SIGNALS:  # before anything starts: a default SIGHUP would kill us
        loop.add_signal_handler(signum, reload_and_forward, signum)
    try:
        await server.start()  # the public port is ours before a wrapped program can try to take it
        if service is not None:
            service.start()
        if pid_file is not None:
            pid_file.write()
        report.ready()
        lifetimes.start()
        if service is None:
            status.ready()
            await stop.event.wait()
            code = 0
        else:
            code = await _run_wrapped(service, stop, status)
        log.info("%s: shutting down", stop.describe() if stop.event.is_set() else "wrapped service ended")
        notifier.stopping()
        shutdown = loop.create_task(server.shutdown(config.close_timeout_s))
        forced = loop.create_task(stop.force.wait())
        await asyncio.wait([shutdown, forced], return_when=asyncio.FIRST_COMPLETED)
        if not shutdown.done():
            log.warning("second signal: exiting without waiting for sessions to close")
            shutdown.cancel()
        forced.cancel()
        return code
    finally:
        lifetimes.close()
        status.close()
        notifier.close()
        if router is not None:
            await router.close()
        if service is not None:
            await asyncio.to_thread(service.close)  # waits for the watchdog process: not on the loop
        for listening in sockets:
            listening.close()


def _connector(config: Config, router: Optional[TokenRouter]) -> Connector:
    """The target when no wrapped program is: one address, or the one a token names."""
    if router is not None:
        return RoutedTargets(config.token_plugin or "")
    assert config.target is not None
    return AddressConnector(config.target, config.connect_timeout_s, target_context() if config.ssl_target else None)


def run_worker() -> int:
    """A worker process of `--workers N` (websockify/worker.py): serve until told to stop."""
    found = WorkerLink.from_environment()
    if found is None:
        print("websockify.worker: started by websockify --workers, not by hand", file=sys.stderr)
        return 2
    link, config = found
    # The parent keeps the process-wide duties: daemon, pid file, systemd, lifetimes, the program.
    config = dataclasses.replace(config, daemon=False, pid_file=None,
                                 lifetime=Lifetime(heartbeat_s=config.lifetime.heartbeat_s))
    try:
        setup_logging(config.logs)
        raise_file_limit()
        tls = server_context(config.tls) if config.tls.enabled else None
        authenticator = _load_authenticator(config, None)
        router = _load_router(config, None)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve_worker(config, link, tls, authenticator, router))
    except WebsockifyError as exc:
        log.error("worker %d: %s", link.index, exc)
        return exc.exit_code


async def _serve_worker(config: Config, link: WorkerLink, tls: Optional[ssl.SSLContext],
                        authenticator: Optional[Authenticator], router: Optional[TokenRouter]) -> int:
    loop = asyncio.get_running_loop()
    stop = _Stop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.on_signal, signum)
    link.start(wrapped=bool(config.wrap_command), connect_timeout_s=config.connect_timeout_s)
    connector = link.target if link.target is not None else _connector(config, router)
    server = ProxyServer(config, connector, link.sockets, tls, authenticator, router)
    server.on_session_start = link.session_started
    server.on_session_end = link.session_ended
    link.on_stop_accepting = server.stop_accepting

    def reload() -> None:
        server.reload_tls()
        if router is not None:
            router.reload()

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await server.start(announce=False)
        await stop.event.wait()
        await server.shutdown(config.close_timeout_s)
        return 0
    finally:
        if router is not None:
            await router.close()


async def _run_wrapped(service: "WrappedService", stop: _Stop, status: "_Status") -> int:
    """Until the program ends (its status is ours) or we are stopped (stop it first)."""
    ready = asyncio.ensure_future(service.wait_ready())

    def announce(done: "asyncio.Future[None]") -> None:
        if not done.cancelled():  # cancelled: stopped before the program was ready
            status.ready()

    ready.add_done_callback(announce)
    stopped = asyncio.ensure_future(stop.event.wait())
    waiting: list[asyncio.Future[Any]] = [stopped, service.exited]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
        stopped.cancel()
    if service.exited.done():
        return service.exited.result()
    log.info("%s: stopping the wrapped service", stop.describe())
    code = await service.stop(stop.signal, stop.force)
    return code if stop.signals else 0  # ending by a lifetime option is a success


class _Status:
    """What `systemctl status` shows: where we listen, how many sessions, the program's state."""

    _EVERY_S = 1.0  # at most one update a second, however busy

    def __init__(self, notifier: Notifier, server: "ProxyServer | WorkerGroup", service: "Optional[WrappedService]"):
        self._notifier = notifier
        self._server = server
        self._service = service
        self._sessions = 0
        self._pending: Optional[asyncio.TimerHandle] = None
        self._is_ready = False
        # Named now: the sockets are closed when accepting stops (--timeout, shutdown).
        self._where = ", ".join(str(s) for s in server.sockets)

    def text(self) -> str:
        parts = [f"listening on {self._where}", f"{self._sessions} session{'' if self._sessions == 1 else 's'}"]
        if self._service is not None:
            parts.append(self._service.status_text())
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
