"""A worker's side of `--workers N`: its settings from the parent, its channel back,
and the wrapped program as the parent reports it.

The parent passes each worker its settings in two environment variables (the
Config pickled: the same settings, relative paths already made absolute) and
its listening sockets and control socket as inherited descriptors.
"""
from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import pickle
import socket
import sys
import termios
from dataclasses import dataclass
from typing import Callable, Mapping

from ..config import Config
from ..proxy.target import AddressConnector, ProtocolFactory, wait_for_program
from ..server.listener import adopt_listener
from ..wrap import process
from ..wrap.supervisor import ProgramState
from . import control
from .control import Kind, Message

log = logging.getLogger(__name__)

ENVIRONMENT = "WEBSOCKIFY_WORKER"
_CONFIG_ENVIRONMENT = f"{ENVIRONMENT}_CONFIG"
VARIABLES = (ENVIRONMENT, _CONFIG_ENVIRONMENT)


@dataclass(frozen=True)
class WorkerSettings:
    """What the parent tells a worker when it starts it."""

    index: int
    parent_pid: int
    control_fd: int
    report_sessions: bool  # send SESSION_STARTED/SESSION_ENDED
    listening_fds: list[int]
    config: Config

    def to_environment(self) -> dict[str, str]:
        description = (f"{self.index},{self.parent_pid},{self.control_fd},{int(self.report_sessions)},"
                       + ":".join(map(str, self.listening_fds)))
        return {ENVIRONMENT: description,
                _CONFIG_ENVIRONMENT: base64.b64encode(pickle.dumps(self.config)).decode("ascii")}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "WorkerSettings" | None:
        """The settings in `environ`, or None when it has none (not started by a parent)."""
        description = environ.get(ENVIRONMENT)
        settings = environ.get(_CONFIG_ENVIRONMENT)
        if description is None or settings is None:
            return None
        index, parent, control_fd, report, fds = description.split(",")
        config: Config = pickle.loads(base64.b64decode(settings))
        return cls(int(index), int(parent), int(control_fd), report == "1",
                   [int(fd) for fd in fds.split(":") if fd], config)


class RemoteTarget:
    """A worker's connector to a program the parent wraps: it waits for the program
    while the parent says it is starting, as a single process would."""

    description = "wrapped command"

    def __init__(self, connect_timeout_s: float):
        self._timeout_s = connect_timeout_s
        self.state = ProgramState.STARTING
        self._ready = asyncio.Event()
        self._connector: AddressConnector | None = None

    def update(self, message: Message) -> None:
        state = message.program_state
        if state is None:
            return
        self.state = state
        if state is ProgramState.READY:
            assert message.address is not None
            self._connector = AddressConnector(message.address, self._timeout_s)
            self.description = f"wrapped command at {self._connector.description}"
            self._ready.set()
        else:
            self._ready.clear()

    async def connect(self, factory: ProtocolFactory) -> asyncio.Transport:
        await wait_for_program(self._ready, self.state is not ProgramState.DOWN, self._timeout_s)
        assert self._connector is not None
        return await self._connector.connect(factory)


class WorkerLink:
    """A worker's side: its inherited sockets and the channel to the parent."""

    def __init__(self, settings: WorkerSettings):
        self.index = settings.index
        self._control = socket.socket(fileno=settings.control_fd)
        self._control.setblocking(False)
        self._report = settings.report_sessions
        self.sockets = [adopt_listener(fd, f"worker {settings.index}") for fd in settings.listening_fds]
        self._target: RemoteTarget | None = None
        self._on_stop_accepting: Callable[[], None] = lambda: None
        process.die_with_parent(settings.parent_pid)  # a parent SIGKILLed leaves no worker behind

    def start(self, on_stop_accepting: Callable[[], None], target: RemoteTarget | None) -> None:
        """Tell the parent we listen, and that we live once a second from now on; its
        messages call `on_stop_accepting` and update `target` (the wrapped program, if any)."""
        self._on_stop_accepting = on_stop_accepting
        self._target = target
        loop = asyncio.get_running_loop()
        loop.add_reader(self._control.fileno(), self._receive)
        self._send(Message(Kind.LISTENING))
        loop.call_later(control.HEARTBEAT_INTERVAL_S, self._beat)

    def _beat(self) -> None:
        # A timer on our own loop, not a thread: a loop that is stuck (or a
        # process that is stopped) must fall silent, so the parent replaces it.
        # While the parent has not read what we sent last (it is stopped too),
        # that message will say we live when it does; more beats would only fill
        # the socket's buffer and crowd out the session counts.
        if _unread_bytes(self._control) == 0:
            self._send(Message(Kind.ALIVE))
        asyncio.get_running_loop().call_later(control.HEARTBEAT_INTERVAL_S, self._beat)

    def _receive(self) -> None:
        try:
            data = self._control.recv(control.MAX_MESSAGE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # the parent is gone: PDEATHSIG ends us
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            return
        try:
            message = control.decode(data)
        except ValueError as exc:
            log.debug("worker %d: %s", self.index, exc)
            return
        if message.kind is Kind.STOP_ACCEPTING:
            self._on_stop_accepting()
        elif self._target is not None:
            self._target.update(message)

    def _send(self, message: Message) -> None:
        try:
            self._control.send(control.encode(message))
        except OSError:
            pass

    def session_started(self) -> None:
        if self._report:
            self._send(Message(Kind.SESSION_STARTED))

    def session_ended(self) -> None:
        if self._report:
            self._send(Message(Kind.SESSION_ENDED))


def _unread_bytes(sock: socket.socket) -> int:
    """What we sent on `sock` that the peer has not read yet (0 if the kernel will not say)."""
    try:
        return int.from_bytes(fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"), sys.byteorder)
    except OSError:
        return 0
