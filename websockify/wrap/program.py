"""The wrapped program as the proxy's target: start, readiness, supervision, stop.

The supervisor (pure) decides; this module carries its decisions out on the
event loop, process.py does the process work, and the reaper (reaper.py) says
when a process of the program's tree has exited. Clients that arrive while the
program starts or respawns wait for it, within the connect timeout.

Ready means: a moved socket of the program listens. rebind.so says so with a
datagram (readiness.py), so nothing polls while the program starts, however long
it takes, and a program that binds but never listens is simply never ready.

The program's tree is every descendant of websockify that nobody else watched
for (the workers and the watchdog are watched by their owners). Those of its
processes that are our own children are watched; when one exits, the tree is
looked at again and the children we have now are watched, orphans re-parented to
us included. Any process of the tree descends from one of those, so the tree's
last exit is always one we watch. An orphan re-parented to us that exits while
the watched ones still run is found by the reaper (adopt_orphans) and collected.
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
from typing import Callable

from ..config import Config, TcpAddress
from ..errors import StartupError
from ..fdlimit import INITIAL_NOFILE
from ..metrics import meter
from ..proxy.target import AddressConnector, ProtocolFactory, wait_for_program
from . import process
from .readiness import MAX_PATH_BYTES, ReadinessSocket
from .reaper import ChildReaper
from .rebind import child_environment
from .supervisor import Exit, KeepProxying, ProgramState, Respawn, State, Supervisor

log = logging.getLogger(__name__)

_SLOW_START_WARNING_S = 10.0
_KILLED_WAIT_S = 5.0  # after SIGKILL: the kernel's part only


class WrappedProgram:
    def __init__(self, config: Config, library: Path, reaper: ChildReaper,
                 clock: Callable[[], float] = time.monotonic):
        self._config = config
        assert config.listen is not None, "the port the program binds"
        self.public_port = config.listen.port
        self._library = library
        self._reaper = reaper
        self._clock = clock
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
        self._tree_empty = asyncio.Event()
        self._address: TcpAddress | None = None
        self._connector: AddressConnector | None = None
        self._main_pid: int | None = None
        self._last_status: int | None = None
        self._watchdog_pid: int | None = None
        self._readiness: ReadinessSocket | None = None
        self._slow_start: asyncio.TimerHandle | None = None
        self._respawn: asyncio.TimerHandle | None = None
        self._state_listeners: list[Callable[[], None]] = []
        self.exited: asyncio.Future[int] = self._loop.create_future()

    def add_state_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever target_state() may have changed."""
        self._state_listeners.append(listener)

    def _state_changed(self) -> None:
        for listener in self._state_listeners:
            listener()

    # -- start -----------------------------------------------------------

    def start(self) -> None:
        process.become_subreaper()
        self._reaper.adopt_orphans(self._adopt)
        self._watchdog_pid = process.start_watchdog(self.marker)
        self._reaper.watch(self._watchdog_pid, self._watchdog_exited)
        self._spawn()

    def _notify_path(self, start: int) -> str:
        return os.path.join(self._workdir, f"notify.{start}")

    def _spawn(self) -> None:
        self._respawn = None
        start = self._supervisor.starts + 1
        if start > 1:
            meter().program_restarted()
        try:
            self._readiness = ReadinessSocket(self._notify_path(start), self._on_listening)
            env = child_environment(dict(os.environ), self._library, self.public_port,
                                    self._readiness.path, self.marker, os.getpid(), INITIAL_NOFILE)
            self._main_pid = process.spawn(self._argv, env, self._config.working_dir)
        except OSError as exc:
            log.error("cannot start %s: %s", self._argv[0], exc.strerror or exc)
            self._supervisor.spawned(self._clock())
            self._tree_gone(127)
            return
        self._tree_empty.clear()
        self._reaper.watch(self._main_pid, self._member_exited)
        self._supervisor.spawned(self._clock())
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
            self._state_changed()
            return
        self._cancel_slow_start()
        self._supervisor.ready()
        self._ready.set()
        self._state_changed()
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

    def target_state(self) -> tuple[ProgramState, TcpAddress | None]:
        """(READY, address), (STARTING, None) while it starts or respawns, or (DOWN, None)."""
        state = self._supervisor.program_state
        if state is ProgramState.READY and self._address is not None:
            return state, self._address
        return (ProgramState.DOWN if state is ProgramState.DOWN else ProgramState.STARTING), None

    def status_text(self) -> str:
        state = self._supervisor.state.value
        return f"wrapped program {state}" + (f" (pid {self._main_pid})" if self._main_pid else "")

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        await wait_for_program(self._ready, self._supervisor.accepting_clients, self._config.connect_timeout_s)
        assert self._connector is not None
        return await self._connector.connect(factory)

    # -- supervision -----------------------------------------------------

    def _member_exited(self, pid: int, status: int | None) -> None:
        """A process of the tree ended (`status` None: not our child, its parent has it)."""
        if status is not None:
            self._last_status = status
            if pid == self._main_pid:
                log.info("%s (pid %d) exited with status %d", self._argv[0], pid, status)
            else:
                log.debug("process %d of the wrapped service exited with status %d", pid, status)
        alive = self._watch_tree()
        if not alive and self._supervisor.state in (State.STARTING, State.RUNNING):
            self._tree_gone(self._last_status if self._last_status is not None else 0)

    def _adopt(self, pid: int) -> None:
        """An orphan of the tree, re-parented to us, exited unwatched: it was ours."""
        self._reaper.watch(pid, self._member_exited)

    def _watchdog_exited(self, pid: int, status: int | None) -> None:
        log.warning("the watchdog process exited (%s)", status)

    def _watch_tree(self) -> list[process.Process]:
        """The tree as it is now, those of it that are our children watched; sets _tree_empty.

        Not its grandchildren: their parents collect them, and a program that forks
        busily would cost a look at the tree for each of its exits."""
        alive = self._alive()
        for member in process.own_children(alive):
            if not self._reaper.is_watched(member.pid):
                self._reaper.watch(member.pid, self._member_exited)
        if alive:
            self._tree_empty.clear()
        else:
            self._tree_empty.set()
        return alive

    def _alive(self) -> list[process.Process]:
        return process.tree(exclude=self._reaper.watched_by_others(self._member_exited))

    def _tree_gone(self, status: int) -> None:
        self._ready.clear()
        self._loop.call_soon(self._state_changed)
        self._stop_waiting_for_readiness()
        decision = self._supervisor.tree_exited(self._clock(), status)
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
            process.direct_children(exclude=self._reaper.watched_by_others(self._member_exited))
        log.info("forwarding %s to %s", signal.Signals(signum).name, ", ".join(str(p.pid) for p in leaders) or "nobody")
        process.send(leaders, signum)

    # -- stop ------------------------------------------------------------

    async def stop(self, signum: int, force: asyncio.Event) -> int:
        """Forward the stop signal to the whole tree, wait the grace period, kill the rest."""
        self._supervisor.stop(signum)
        if self._respawn is not None:
            self._respawn.cancel()
        self._stop_waiting_for_readiness()
        survivors = self._watch_tree()
        process.send(survivors, signum)
        grace_s = self._config.grace_period_s
        if survivors and not await self._wait_gone(grace_s, force):
            left = self._alive()
            log.warning("killing %d process(es) still running %s after %s",
                        len(left), "on a second signal" if force.is_set() else f"{grace_s:g}s",
                        signal.Signals(signum).name)
            process.send(left, signal.SIGKILL)
            await self._wait_gone(_KILLED_WAIT_S, None)
        return self._supervisor.stop_exit_code(self._last_status)

    async def _wait_gone(self, seconds: float, force: asyncio.Event | None) -> bool:
        """Until the reaper has seen the whole tree exit, `force` is set, or `seconds` pass."""
        waits = [asyncio.ensure_future(self._tree_empty.wait())]
        if force is not None:
            waits.append(asyncio.ensure_future(force.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return not self._watch_tree()

    def detach(self) -> None:
        """On the loop, before close(): stop listening for readiness and for exits."""
        self._stop_waiting_for_readiness()
        if self._watchdog_pid is not None:
            self._reaper.forget(self._watchdog_pid)  # stop_watchdog() collects it

    def close(self) -> None:
        """Off the loop (it waits for the watchdog process): the watchdog, the work directory."""
        if self._watchdog_pid is not None:
            process.stop_watchdog(self._watchdog_pid)
        shutil.rmtree(self._workdir, ignore_errors=True)
