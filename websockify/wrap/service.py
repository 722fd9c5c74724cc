"""The wrapped program as the proxy's target: start, readiness, supervision, stop.

The supervisor (pure) decides; this module carries its decisions out on the
event loop, and process.py does the process work. Clients that arrive while the
service starts or respawns wait for it, within the connect timeout.

Ready means: a moved socket of the program listens. rebind.so says so with a
datagram (notify.py), so nothing polls while the program starts, however long
it takes, and a program that binds but never listens is simply never ready.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from ..config import Config, TcpAddress
from ..errors import StartupError
from ..fdlimit import INITIAL_NOFILE
from ..proxy.target import AddressConnector, ProtocolFactory, wait_for_program
from . import process
from .notify import MAX_PATH_BYTES, ReadinessSocket
from .rebind import child_environment
from .supervisor import Exit, KeepProxying, Respawn, State, Supervisor

log = logging.getLogger(__name__)

_STOP_POLL_S = 0.04
# uvloop keeps SIGCHLD for itself, so children are reaped by polling waitpid (a
# cheap syscall); the process tree is only walked when something was reaped.
_REAP_POLL_S = 0.05
_SLOW_START_WARNING_S = 10.0


class WrappedService:
    def __init__(self, config: Config, library: Path):
        self._config = config
        assert config.listen is not None, "the port the program binds"
        self.public_port = config.listen.port
        self._library = library
        self._argv = config.wrap_command
        self.description = f"wrapped command {os.path.basename(self._argv[0])}"
        self._supervisor = Supervisor(config.wrap_mode)
        self.marker = f"WEBSOCKIFY_WRAP_ID={os.getpid()}-{secrets.token_hex(8)}"
        self._workdir = tempfile.mkdtemp(prefix="websockify-wrap-", dir=os.environ.get("XDG_RUNTIME_DIR"))
        if len(self._notify_path(99999).encode()) > MAX_PATH_BYTES:
            shutil.rmtree(self._workdir, ignore_errors=True)
            variable = "XDG_RUNTIME_DIR" if os.environ.get("XDG_RUNTIME_DIR") else "TMPDIR"
            raise StartupError(f"the temporary directory {os.path.dirname(self._workdir)} has too long a path "
                               f"for a Unix socket: set {variable} to a shorter one")
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._address: Optional[TcpAddress] = None
        self._connector: Optional[AddressConnector] = None
        self._main_pid: Optional[int] = None
        self._last_status: Optional[int] = None
        self._watchdog_pid: Optional[int] = None
        self._readiness: Optional[ReadinessSocket] = None
        self._slow_start: Optional[asyncio.TimerHandle] = None
        self._respawn: Optional[asyncio.TimerHandle] = None
        self._reap_timer: Optional[asyncio.TimerHandle] = None
        self.exited: asyncio.Future[int] = self._loop.create_future()
        # Other children of websockify (worker processes): not part of the service's
        # tree; their exit statuses are handed to these callbacks.
        self.foreign_children: dict[int, Callable[[int], None]] = {}
        self.on_state_change: Callable[[], None] = lambda: None

    # -- start -----------------------------------------------------------

    def start(self) -> None:
        process.become_subreaper()
        self._watchdog_pid = process.start_watchdog(self.marker)
        self._schedule_reap_poll()
        self._spawn()

    def _notify_path(self, start: int) -> str:
        return os.path.join(self._workdir, f"notify.{start}")

    def _spawn(self) -> None:
        self._respawn = None
        start = self._supervisor.starts + 1
        try:
            self._readiness = ReadinessSocket(self._notify_path(start), self._on_listening)
            env = child_environment(dict(os.environ), self._library, self.public_port,
                                    self._readiness.path, self.marker, os.getpid(), INITIAL_NOFILE)
            self._main_pid = process.spawn(self._argv, env, self._config.working_dir)
        except OSError as exc:
            log.error("cannot start %s: %s", self._argv[0], exc.strerror or exc)
            self._supervisor.spawned(time.monotonic())
            self._tree_gone(127)
            return
        self._supervisor.spawned(time.monotonic())
        log.info("started %s (pid %d)", " ".join(self._argv), self._main_pid)
        self._slow_start = self._loop.call_later(_SLOW_START_WARNING_S, self._warn_slow_start)

    def _on_listening(self, address: TcpAddress) -> None:
        """rebind.so reported a moved socket listening: the service is ready there."""
        if self._supervisor.state not in (State.STARTING, State.RUNNING):
            return
        if self._address is not None and self._address.port == address.port:
            return  # the same port again (its other address family, a second listen())
        moved = self._address is not None
        self._address = address
        self._connector = AddressConnector(address, self._config.connect_timeout_s)
        if moved:  # it closed the port and listens on a new one (a re-exec, a launcher's probe...)
            log.info("service moved to %s", self._connector.description)
            self.on_state_change()
            return
        self._cancel_slow_start()
        self._supervisor.ready()
        self._ready.set()
        self.on_state_change()
        log.info("service ready on %s (public port %d)", self._connector.description, self.public_port)

    def _warn_slow_start(self) -> None:
        self._slow_start = None
        log.warning("%s has not listened on port %d after %.0fs: does it listen on that port? "
                    "(programs that bypass libc's bind() and listen(), like Go ones, cannot be moved)",
                    self._argv[0], self.public_port, _SLOW_START_WARNING_S)

    def _cancel_slow_start(self) -> None:
        if self._slow_start is not None:
            self._slow_start.cancel()
            self._slow_start = None

    def _stop_waiting_for_readiness(self) -> None:
        self._cancel_slow_start()
        if self._readiness is not None:
            self._readiness.close()
            self._readiness = None
        self._address = None

    # -- the proxy's connector -------------------------------------------

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def target_state(self) -> tuple[str, Optional[TcpAddress]]:
        """("ready", address), ("waiting", None) while it starts or respawns, or ("down", None)."""
        if self._ready.is_set() and self._address is not None:
            return "ready", self._address
        return ("waiting" if self._supervisor.accepting_clients else "down"), None

    def status_text(self) -> str:
        state = self._supervisor.state.value
        return f"wrapped program {state}" + (f" (pid {self._main_pid})" if self._main_pid else "")

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        await wait_for_program(self._ready, self._supervisor.accepting_clients, self._config.connect_timeout_s)
        assert self._connector is not None
        return await self._connector.connect(factory)

    # -- supervision -----------------------------------------------------

    def _schedule_reap_poll(self) -> None:
        self._reap_timer = self._loop.call_later(_REAP_POLL_S, self._reap_poll)

    def _reap_poll(self) -> None:
        self._children_changed()
        self._schedule_reap_poll()

    def _children_changed(self) -> None:
        reaped = process.reap()
        for pid, status in reaped:
            foreign = self.foreign_children.pop(pid, None)
            if foreign is not None:
                foreign(status)
                continue
            if pid == self._watchdog_pid:
                log.warning("the watchdog process exited (%d)", status)
                continue
            self._last_status = status
            if pid == self._main_pid:
                log.info("%s (pid %d) exited with status %d", self._argv[0], pid, status)
            else:
                log.debug("process %d of the wrapped service exited with status %d", pid, status)
        if reaped and self._supervisor.state in (State.STARTING, State.RUNNING) and not self._alive():
            self._tree_gone(self._last_status if self._last_status is not None else 0)

    def reap_now(self) -> None:
        """Collect exited children at once (the parent waiting for its workers)."""
        self._children_changed()

    def _alive(self) -> list[process.Process]:
        exclude = [*self.foreign_children, *([self._watchdog_pid] if self._watchdog_pid else [])]
        return process.tree(exclude=exclude)

    def _tree_gone(self, status: int) -> None:
        self._ready.clear()
        self._loop.call_soon(self.on_state_change)
        self._stop_waiting_for_readiness()
        decision = self._supervisor.tree_exited(time.monotonic(), status)
        if isinstance(decision, Exit):
            log.info("wrapped service ended with status %d; exiting (wrap mode exit)", decision.code)
            if not self.exited.done():
                self.exited.set_result(decision.code)
        elif isinstance(decision, Respawn):
            log.warning("wrapped service ended with status %d; restarting in %.1fs (start #%d)",
                        status, decision.delay_s, decision.attempt)
            self._respawn = self._loop.call_later(decision.delay_s, self._spawn)
        elif isinstance(decision, KeepProxying):
            log.warning("wrapped service ended with status %d; proxying on without it (wrap mode ignore)",
                        status)

    def forward(self, signum: int) -> None:
        """Pass a signal on to the program (its daemonized survivors if it is gone)."""
        targets = self._alive()
        leaders = [p for p in targets if p.pid == self._main_pid] or \
            process.direct_children(exclude=[self._watchdog_pid] if self._watchdog_pid else [])
        log.info("forwarding %s to %s", signal.Signals(signum).name, ", ".join(str(p.pid) for p in leaders) or "nobody")
        process.send(leaders, signum)

    # -- stop ------------------------------------------------------------

    async def stop(self, signum: int, force: asyncio.Event) -> int:
        """Forward the stop signal to the whole tree, wait the grace period, kill the rest."""
        self._supervisor.stop(signum)
        if self._respawn is not None:
            self._respawn.cancel()
        self._stop_waiting_for_readiness()
        survivors = self._alive()
        process.send(survivors, signum)
        grace_s = self._config.grace_period_s
        if survivors and not await self._wait_gone(grace_s, force):
            left = self._alive()
            log.warning("killing %d process(es) still running %s after %s",
                        len(left), "on a second signal" if force.is_set() else f"{grace_s:g}s",
                        signal.Signals(signum).name)
            process.send(left, signal.SIGKILL)
            await self._wait_gone(5.0, None)
        self._children_changed()
        return self._supervisor.stop_exit_code(self._last_status)

    async def _wait_gone(self, seconds: float, force: Optional[asyncio.Event]) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (force is not None and force.is_set()):
            self._children_changed()
            if not self._alive():
                return True
            await asyncio.sleep(_STOP_POLL_S)
        return not self._alive()

    def close(self) -> None:
        if self._reap_timer is not None:
            self._reap_timer.cancel()
        self._stop_waiting_for_readiness()
        if self._watchdog_pid is not None:
            process.stop_watchdog(self._watchdog_pid)
        shutil.rmtree(self._workdir, ignore_errors=True)
