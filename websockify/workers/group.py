"""--workers N: N event loops in N processes serving the same listening sockets.

The parent opens the listening sockets and starts each worker as a fresh
interpreter (`python -m websockify.worker`, never a fork of a process that may
have threads) that inherits them, with the settings passed along, so relative
paths and a daemon's `/` working directory cannot change their meaning. The
parent keeps what must be one: a wrapped program and its supervisor, systemd
notification, the lifetime options and the pid file; workers only relay. When
wrapping, the parent tells every worker where the program listens (and when it
is starting or gone), and workers wait for it as a single process would.

Why one socket inherited by all rather than SO_REUSEPORT: it works for every
kind of listener (TCP, Unix, systemd's, inetd's), and a worker that dies leaves
no connection stranded in a queue of its own; the kernel wakes the workers in
turn, so an idle worker takes the next client.

Each worker has one SOCK_SEQPACKET socket pair to the parent, for the messages
in control.py; the worker's side is link.py. A worker's exit comes from the
reaper, which the wrapped program's processes share, and another is started in
its place. So is one that stops answering (liveness.py): stopped, or its loop
stuck, it holds its sessions frozen, so it is killed (SIGKILL: a stopped process
acts on nothing else) and replaced; its sessions are lost, the others untouched.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Callable

from ..config import Config
from ..errors import StartupError
from ..metrics import meter
from ..server.listener import ListeningSocket
from ..wrap import process
from ..wrap.program import WrappedProgram
from ..wrap.reaper import ChildReaper
from . import control
from .control import Kind, Message
from .link import WorkerSettings
from .liveness import CHECK_INTERVAL_S, Liveness

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_RESTART_DELAY_S = 1.0
_REAP_AFTER_KILL_S = 2.0  # SIGKILL is not refused: only a process in uninterruptible I/O is slower


def available_cpus() -> int:
    """CPUs this process may use: its affinity, and a cgroup CPU quota if one is set."""
    count = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as file:  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
            quota, period = file.read().split()
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


@dataclass
class _Worker:
    index: int
    pid: int
    control: socket.socket
    listening: bool = False
    sessions: int = 0
    killed_silent: bool = False  # by us, for not answering: its exit is no news


def _nothing() -> None:
    pass


class WorkerGroup:
    """The parent's side; a server.interface.Server, as a ProxyServer is."""

    def __init__(self, config: Config, sockets: list[ListeningSocket], count: int, reaper: ChildReaper,
                 program: WrappedProgram | None, report_sessions: bool,
                 on_session_start: Callable[[], None] = _nothing, on_session_end: Callable[[], None] = _nothing,
                 environment: dict[str, str] | None = None, on_exit: Callable[[int], None] | None = None):
        """`environment`: added to each worker's; `on_exit(pid)`: a worker has exited."""
        self.config = config
        self._environment = environment or {}
        self._on_exit = on_exit
        # --max-connections and --max-connections-per-ip are for the whole: each worker takes its share.
        limits = config.limits
        per_ip = -(-limits.max_connections_per_ip // count) if limits.max_connections_per_ip else 0
        self._worker_config = dataclasses.replace(config, workers=1, limits=dataclasses.replace(
            limits, max_connections=-(-limits.max_connections // count), max_connections_per_ip=per_ip))
        self.sockets = sockets
        self._count = count
        self._reaper = reaper
        self._program = program
        self._report = report_sessions
        self._on_session_start = on_session_start
        self._on_session_end = on_session_end
        self._loop = asyncio.get_running_loop()
        self._workers: dict[int, _Worker] = {}  # by index
        self._stopping = False
        self._accepting = True
        self._all_listening = asyncio.Event()
        self._none_left = asyncio.Event()
        self._liveness = Liveness(start_limit_s=_START_TIMEOUT_S)
        self._liveness_check: asyncio.TimerHandle | None = None
        if program is not None:
            program.add_state_listener(self._broadcast_program_state)

    async def start(self) -> None:
        for index in range(self._count):
            self._spawn(index)
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                await self._all_listening.wait()
        except TimeoutError:
            raise StartupError(f"the workers did not start listening within {_START_TIMEOUT_S:g}s") from None
        for listening in self.sockets:
            log.info("listening on %s (%d workers)", listening, self._count)
        self._liveness.begin()
        self._liveness_check = self._loop.call_later(CHECK_INTERVAL_S, self._check_liveness)

    def _spawn(self, index: int) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [s.sock.fileno() for s in self.sockets]
        settings = WorkerSettings(index, os.getpid(), child_end.fileno(), self._report, fds, self._worker_config)
        env = {**os.environ, **self._environment, **settings.to_environment()}
        try:
            pid = process.spawn_worker([sys.executable, "-m", "websockify.worker"], env, [*fds, child_end.fileno()])
        except OSError:
            parent_end.close()
            raise
        finally:
            child_end.close()
        parent_end.setblocking(False)
        worker = _Worker(index, pid, parent_end)
        self._workers[index] = worker
        self._none_left.clear()
        self._liveness.started(pid)
        self._reaper.watch(pid, lambda _pid, status: self._exited(worker, status))
        self._loop.add_reader(parent_end.fileno(), self._receive, worker)
        if self._program is not None:
            self._send(worker, self._program_message(self._program))
        log.debug("worker %d started (pid %d)", index, pid)

    def _receive(self, worker: _Worker) -> None:
        try:
            data = worker.control.recv(control.MAX_MESSAGE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker is gone; its exit status comes from the reaper
            self._loop.remove_reader(worker.control.fileno())
            return
        self._liveness.heard(worker.pid)  # whatever it says, its loop runs
        try:
            kind = control.decode(data).kind
        except ValueError as exc:
            log.debug("worker %d: %s", worker.index, exc)
            return
        if kind is Kind.LISTENING:
            worker.listening = True
            if all(w.listening for w in self._workers.values()) and len(self._workers) == self._count:
                self._all_listening.set()
        elif kind is Kind.SESSION_STARTED:
            worker.sessions += 1
            self._on_session_start()
        elif kind is Kind.SESSION_ENDED:
            worker.sessions -= 1
            self._on_session_end()

    def _send(self, worker: _Worker, message: Message) -> None:
        try:
            worker.control.send(control.encode(message))
        except OSError:
            pass  # it is exiting: the reaper will tell

    @staticmethod
    def _program_message(program: WrappedProgram) -> Message:
        return Message.program(*program.target_state())

    def _broadcast_program_state(self) -> None:
        assert self._program is not None
        message = self._program_message(self._program)
        for worker in self._workers.values():
            self._send(worker, message)

    # -- silence and exits -----------------------------------------------

    def _check_liveness(self) -> None:
        if self._stopping:
            return  # shutdown has its own bound, after which it kills what is left
        self._liveness_check = self._loop.call_later(CHECK_INTERVAL_S, self._check_liveness)
        by_pid = {worker.pid: worker for worker in self._workers.values()}
        for silent in self._liveness.check():
            worker = by_pid.get(silent.pid)
            if worker is None:
                continue
            log.error("worker %d (pid %d) silent for %.1fs (stopped, or its event loop stuck): killing it%s%s",
                      worker.index, worker.pid, silent.silent_s,
                      " and starting another" if self._accepting else "", self._lost(worker))
            worker.killed_silent = True
            process.signal_pid(worker.pid, signal.SIGKILL)  # the reaper reports its exit: _exited

    def _lost(self, worker: _Worker) -> str:
        if not self._report:  # sessions are counted only when something needs the count
            return ""
        return f" ({worker.sessions} session{'' if worker.sessions == 1 else 's'} lost)"

    def _exited(self, worker: _Worker, status: int | None) -> None:
        if self._workers.get(worker.index) is not worker:
            return
        del self._workers[worker.index]
        self._liveness.forget(worker.pid)
        if not self._workers:
            self._none_left.set()
        try:
            self._loop.remove_reader(worker.control.fileno())
        except (ValueError, OSError):
            pass
        worker.control.close()
        if self._on_exit is not None:
            self._on_exit(worker.pid)
        for _ in range(worker.sessions):  # its sessions ended with it
            self._on_session_end()
        if self._stopping:
            log.debug("worker %d (pid %d) exited with status %s", worker.index, worker.pid, status)
            return
        level = logging.DEBUG if worker.killed_silent else logging.ERROR  # killed: said so then
        log.log(level, "worker %d (pid %d) exited with status %s; starting another in %gs",
                worker.index, worker.pid, status, _RESTART_DELAY_S)
        self._loop.call_later(_RESTART_DELAY_S, self._restart, worker.index)

    def _restart(self, index: int) -> None:
        if self._stopping or not self._accepting or index in self._workers:
            return  # after --timeout the sockets are closed: nothing for a new worker to serve
        try:
            self._spawn(index)
            meter().worker_restarted()
        except OSError as exc:
            log.error("cannot start worker %d: %s; trying again in %gs", index, exc, _RESTART_DELAY_S)
            self._loop.call_later(_RESTART_DELAY_S, self._restart, index)

    def processes(self) -> list[tuple[str, int]]:
        """("worker-N", pid) of each running worker."""
        return [(f"worker-{index}", worker.pid) for index, worker in sorted(self._workers.items())]

    # -- the rest of server.interface.Server --------------------------------

    def reload_tls(self) -> None:
        """SIGHUP: each worker reloads its certificate and token plugin."""
        for worker in self._workers.values():
            process.signal_pid(worker.pid, signal.SIGHUP)

    def stop_accepting(self) -> None:
        self._accepting = False
        for worker in self._workers.values():
            self._send(worker, Message(Kind.STOP_ACCEPTING))
        for listening in self.sockets:  # our copies too, or the kernel would queue new clients
            listening.close()

    async def shutdown(self, timeout_s: float) -> None:
        """SIGTERM to every worker (each closes its sessions with 1001), then wait for
        them; SIGKILL to any left after `timeout_s` and a little more (a stopped one)."""
        self._stopping = True
        if self._liveness_check is not None:
            self._liveness_check.cancel()
        for worker in list(self._workers.values()):
            process.signal_pid(worker.pid, signal.SIGTERM)
        if not self._workers:
            return
        try:
            if await self._wait_for_none_left(timeout_s + 2.0):
                return
            for worker in list(self._workers.values()):
                log.warning("worker %d (pid %d) did not stop in time; killing it", worker.index, worker.pid)
                process.signal_pid(worker.pid, signal.SIGKILL)
            # Collected by us rather than left as zombies for whoever inherits them.
            if not await self._wait_for_none_left(_REAP_AFTER_KILL_S):
                log.warning("worker pids %s not collected after SIGKILL",
                            " ".join(str(worker.pid) for worker in self._workers.values()))
        except asyncio.CancelledError:
            # A second signal: nothing more is waited for. A stopped worker would
            # never act on the SIGTERM (nor on the one its parent's death sends).
            for worker in self._workers.values():
                process.signal_pid(worker.pid, signal.SIGKILL)
            raise

    async def _wait_for_none_left(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._none_left.wait()  # the reaper reports each exit
        except TimeoutError:
            return False
        return True
