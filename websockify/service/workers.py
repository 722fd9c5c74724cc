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

Control channel, one SOCK_SEQPACKET socket pair per worker, one message per
packet: worker → parent `L` (listening), `+`/`-` (a session started/ended, only
when the parent asked); parent → worker `T host port` (the wrapped program is
ready there), `W` (it is starting), `D` (it is gone), `S` (stop accepting).
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import pickle
import signal
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from ..addresses import TcpAddress
from ..config import Config
from ..errors import StartupError
from ..proxy.target import AddressConnector, ProtocolFactory, wait_for_program
from ..server.listener import ListeningSocket, adopt_listener
from ..wrap import process

if TYPE_CHECKING:
    from ..wrap.service import WrappedService

log = logging.getLogger(__name__)

ENVIRONMENT = "WEBSOCKIFY_WORKER"
_START_TIMEOUT_S = 30.0
_RESTART_DELAY_S = 1.0
_REAP_POLL_S = 0.05


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


class WorkerGroup:
    """The parent's side: has what app.py uses of a ProxyServer, plus the workers."""

    def __init__(self, config: Config, sockets: list[ListeningSocket], count: int,
                 service: "Optional[WrappedService]", report_sessions: bool):
        self.config = config
        # --max-connections and --max-connections-per-ip are for the whole: each worker takes its share.
        limits = config.limits
        per_ip = -(-limits.max_connections_per_ip // count) if limits.max_connections_per_ip else 0
        self._worker_config = dataclasses.replace(config, workers=1, limits=dataclasses.replace(
            limits, max_connections=-(-limits.max_connections // count), max_connections_per_ip=per_ip))
        self.sockets = sockets
        self._count = count
        self._service = service
        self._report = report_sessions
        self._loop = asyncio.get_running_loop()
        self._workers: dict[int, _Worker] = {}  # by index
        self._stopping = False
        self._accepting = True
        self._all_listening = asyncio.Event()
        self._reap_timer: Optional[asyncio.TimerHandle] = None
        self.on_session_start: Callable[[], None] = lambda: None
        self.on_session_end: Callable[[], None] = lambda: None
        if service is not None:
            service.on_state_change = self._broadcast_target

    async def start(self) -> None:
        for index in range(self._count):
            self._spawn(index)
        if self._service is None:
            self._reap_timer = self._loop.call_later(_REAP_POLL_S, self._reap_poll)
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                await self._all_listening.wait()
        except TimeoutError:
            raise StartupError(f"the workers did not start listening within {_START_TIMEOUT_S:g}s") from None
        for listening in self.sockets:
            log.info("listening on %s (%d workers)", listening, self._count)

    def _spawn(self, index: int) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [s.sock.fileno() for s in self.sockets]
        settings = base64.b64encode(pickle.dumps(self._worker_config)).decode("ascii")
        description = f"{index},{os.getpid()},{child_end.fileno()},{int(self._report)}," + ":".join(map(str, fds))
        env = {**os.environ, ENVIRONMENT: description, f"{ENVIRONMENT}_CONFIG": settings}
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
        if self._service is not None:
            self._service.foreign_children[pid] = lambda status: self._exited(worker, status)
        self._loop.add_reader(parent_end.fileno(), self._receive, worker)
        self._send(worker, self._target_message())
        log.debug("worker %d started (pid %d)", index, pid)

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.control.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message = b""
        if not message:  # the worker is gone; its exit status comes from the reaper
            self._loop.remove_reader(worker.control.fileno())
            return
        if message == b"L":
            worker.listening = True
            if all(w.listening for w in self._workers.values()) and len(self._workers) == self._count:
                self._all_listening.set()
        elif message == b"+":
            worker.sessions += 1
            self.on_session_start()
        elif message == b"-":
            worker.sessions -= 1
            self.on_session_end()

    def _send(self, worker: _Worker, message: bytes) -> None:
        try:
            worker.control.send(message)
        except OSError:
            pass  # it is exiting: the reaper will tell

    def _target_message(self) -> bytes:
        if self._service is None:
            return b"D" if self.config.wrap_command else b"-"
        state, address = self._service.target_state()
        if state == "ready" and address is not None:
            return f"T {address.host} {address.port}".encode()
        return b"W" if state == "waiting" else b"D"

    def _broadcast_target(self) -> None:
        message = self._target_message()
        for worker in self._workers.values():
            self._send(worker, message)

    # -- exits -----------------------------------------------------------

    def _reap_poll(self) -> None:
        for pid, status in process.reap():
            worker = next((w for w in self._workers.values() if w.pid == pid), None)
            if worker is not None:
                self._exited(worker, status)
        self._reap_timer = self._loop.call_later(_REAP_POLL_S, self._reap_poll)

    def _exited(self, worker: _Worker, status: int) -> None:
        if self._workers.get(worker.index) is not worker:
            return
        del self._workers[worker.index]
        try:
            self._loop.remove_reader(worker.control.fileno())
        except (ValueError, OSError):
            pass
        worker.control.close()
        for _ in range(worker.sessions):  # its sessions ended with it
            self.on_session_end()
        if self._stopping:
            log.debug("worker %d (pid %d) exited with status %d", worker.index, worker.pid, status)
            return
        log.error("worker %d (pid %d) exited with status %d; starting another in %gs",
                  worker.index, worker.pid, status, _RESTART_DELAY_S)
        self._loop.call_later(_RESTART_DELAY_S, self._restart, worker.index)

    def _restart(self, index: int) -> None:
        if self._stopping or not self._accepting or index in self._workers:
            return  # after --timeout the sockets are closed: nothing for a new worker to serve
        try:
            self._spawn(index)
        except OSError as exc:
            log.error("cannot start worker %d: %s; trying again in %gs", index, exc, _RESTART_DELAY_S)
            self._loop.call_later(_RESTART_DELAY_S, self._restart, index)

    # -- what app.py calls -----------------------------------------------

    def reload_tls(self) -> None:
        """SIGHUP: each worker reloads its certificate and token plugin."""
        for worker in self._workers.values():
            process.signal_pid(worker.pid, signal.SIGHUP)

    def stop_accepting(self) -> None:
        self._accepting = False
        for worker in self._workers.values():
            self._send(worker, b"S")
        for listening in self.sockets:  # our copies too, or the kernel would queue new clients
            listening.close()

    async def shutdown(self, timeout_s: float) -> None:
        """SIGTERM to every worker (each closes its sessions with 1001), then wait for them."""
        self._stopping = True
        for worker in list(self._workers.values()):
            process.signal_pid(worker.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout_s + 2.0):
                while self._workers:
                    await asyncio.sleep(_REAP_POLL_S)
                    if self._service is not None:
                        self._service.reap_now()
        except TimeoutError:
            for worker in list(self._workers.values()):
                log.warning("worker %d did not stop in time; killing it", worker.index)
                process.signal_pid(worker.pid, signal.SIGKILL)
        if self._reap_timer is not None:
            self._reap_timer.cancel()


class RemoteTarget:
    """A worker's connector to a program the parent wraps: it waits for the program
    while the parent says it is starting, as a single process would."""

    description = "wrapped command"

    def __init__(self, connect_timeout_s: float):
        self._timeout_s = connect_timeout_s
        self._state = "W"
        self._ready = asyncio.Event()
        self._connector: Optional[AddressConnector] = None

    def update(self, message: bytes) -> None:
        if message.startswith(b"T "):
            _, host, port = message.decode().split(" ")
            self._connector = AddressConnector(TcpAddress(host, int(port)), self._timeout_s)
            self.description = f"wrapped command at {self._connector.description}"
            self._state = "T"
            self._ready.set()
        elif message in (b"W", b"D"):
            self._state = message.decode()
            self._ready.clear()

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        await wait_for_program(self._ready, self._state != "D", self._timeout_s)
        assert self._connector is not None
        return await self._connector.connect(factory)


class WorkerLink:
    """A worker's side: its inherited sockets, its settings, and the channel to the parent."""

    def __init__(self, index: int, parent_pid: int, control_fd: int, report: bool, fds: list[int]):
        self.index = index
        self._control = socket.socket(fileno=control_fd)
        self._control.setblocking(False)
        self._report = report
        self.sockets = [adopt_listener(fd, f"worker {index}") for fd in fds]
        self.target: Optional[RemoteTarget] = None
        self.on_stop_accepting: Callable[[], None] = lambda: None
        process.die_with_parent(parent_pid)  # a parent SIGKILLed leaves no worker behind

    @classmethod
    def from_environment(cls) -> Optional[tuple["WorkerLink", Config]]:
        description = os.environ.pop(ENVIRONMENT, None)
        settings = os.environ.pop(f"{ENVIRONMENT}_CONFIG", None)
        if description is None or settings is None:
            return None
        index, parent, control, report, fds = description.split(",")
        config: Config = pickle.loads(base64.b64decode(settings))
        link = cls(int(index), int(parent), int(control), report == "1", [int(fd) for fd in fds.split(":") if fd])
        return link, config

    def start(self, wrapped: bool, connect_timeout_s: float) -> None:
        if wrapped:
            self.target = RemoteTarget(connect_timeout_s)
        asyncio.get_running_loop().add_reader(self._control.fileno(), self._receive)
        self._send(b"L")

    def _receive(self) -> None:
        try:
            message = self._control.recv(256)
        except (BlockingIOError, InterruptedError):
            return
        if not message:  # the parent is gone: PDEATHSIG ends us
            asyncio.get_running_loop().remove_reader(self._control.fileno())
        elif message == b"S":
            self.on_stop_accepting()
        elif self.target is not None:
            self.target.update(message)

    def _send(self, message: bytes) -> None:
        try:
            self._control.send(message)
        except OSError:
            pass

    def session_started(self) -> None:
        if self._report:
            self._send(b"+")

    def session_ended(self) -> None:
        if self._report:
            self._send(b"-")
