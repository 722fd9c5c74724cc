"""One owner for child exits: who registered a pid hears of its exit, and nobody else.

Each watched pid gets a pidfd (a descriptor that polls readable once the process
has exited, whoever its parent is) on the event loop; when it fires, that one pid
is collected with waitpid(pid) and its callback called. Nothing here calls
waitpid(-1), so the exit of a child someone else waits for (subprocess.run's)
is never taken by mistake, and nothing polls while children run.

Why pidfds and not SIGCHLD: uvloop keeps SIGCHLD for itself, and a SIGCHLD says
only "some child changed", not which. A pidfd also works for a process that is
not our child: the wrapped program watches every process of its tree, so when
one exits it looks again and watches what is new, including orphans the kernel
re-parents to us (websockify is a child subreaper when it wraps). Those are then
collected here and reported to the program like any other of its processes.

One case gives no event: an orphan that was re-parented to us and exited while
every process we watch still runs (a program that double-forks helpers). So
while a program is wrapped, once a second, one waitid(WNOWAIT) asks whether an
exited child of ours is unwatched, and hands it to the program (adopt_orphans).
That only keeps zombies from piling up: the tree's last exit is always an exit
of a watched process, so the end of the program is seen at once.

Kernels without pidfd_open (before Linux 5.3): the watched pids are checked
every 50 ms instead, by this module only.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import Callable, Protocol

from . import process

log = logging.getLogger(__name__)

# pid, and its exit code as a shell reports it; None when it was not our child
# (a grandchild, whose parent collected the status).
ExitCallback = Callable[[int, int | None], None]

_POLL_S = 0.05  # only without pidfds
_ORPHAN_CHECK_S = 1.0


class EventLoop(Protocol):
    """What the reaper uses of asyncio's loop (a test passes a fake)."""

    def add_reader(self, fd: int, callback: Callable[..., object], *args: object) -> None: ...

    def remove_reader(self, fd: int) -> bool: ...

    def call_soon(self, callback: Callable[..., object], *args: object) -> asyncio.Handle: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> asyncio.TimerHandle: ...


class ChildReaper:
    """Watches pids for their exit and dispatches each exit to the callback registered for it."""

    def __init__(self, loop: EventLoop,
                 try_reap: Callable[[int], int | None] = process.try_reap,
                 open_exit_fd: Callable[[int], int | None] = process.open_exit_fd,
                 is_running: Callable[[int], bool] = process.is_running,
                 close_fd: Callable[[int], None] = os.close,
                 exited_child: Callable[[], int | None] = process.exited_child):
        self._loop = loop
        self._try_reap = try_reap
        self._open_exit_fd = open_exit_fd
        self._is_running = is_running
        self._close_fd = close_fd
        self._exited_child = exited_child
        self._on_orphan: Callable[[int], None] | None = None
        self._orphan_check: asyncio.TimerHandle | None = None
        self._callbacks: dict[int, ExitCallback] = {}
        self._fds: dict[int, int] = {}  # pid -> pidfd
        self._polling = False  # no pidfds on this kernel
        self._poll: asyncio.TimerHandle | None = None

    def watch(self, pid: int, on_exit: ExitCallback) -> None:
        """Call `on_exit(pid, code)` once `pid` has exited (and, if our child, been collected)."""
        if pid in self._callbacks:
            self._callbacks[pid] = on_exit
            return
        self._callbacks[pid] = on_exit
        if not self._polling:
            try:
                fd = self._open_exit_fd(pid)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise
                log.debug("no pidfd_open on this kernel: checking children every %gs", _POLL_S)
                self._polling = True
                self._close_all_fds()
            else:
                if fd is None:  # gone already, reaped by its parent
                    self._loop.call_soon(self._check, pid, True)
                    return
                self._fds[pid] = fd
                self._loop.add_reader(fd, self._check, pid, True)
                return
        if self._poll is None:
            self._poll = self._loop.call_later(_POLL_S, self._poll_all)

    def forget(self, pid: int) -> None:
        """Stop watching `pid`: its exit will be nobody's."""
        self._callbacks.pop(pid, None)
        fd = self._fds.pop(pid, None)
        if fd is not None:
            self._loop.remove_reader(fd)
            self._close_fd(fd)

    def watched_by_others(self, on_exit: ExitCallback) -> list[int]:
        """The pids watched for someone other than `on_exit` (the workers and the
        watchdog, seen from the wrapped program: not part of its tree)."""
        return [pid for pid, callback in self._callbacks.items() if callback != on_exit]

    def is_watched(self, pid: int) -> bool:
        return pid in self._callbacks

    def check_now(self) -> None:
        """Look at every watched pid at once (stopping: does not wait for the loop)."""
        for pid in list(self._callbacks):
            self._check(pid, False)

    def adopt_orphans(self, on_orphan: Callable[[int], None]) -> None:
        """Hand each exited child of ours that nobody watches to `on_orphan(pid)`,
        which watches it (the wrapped program, once it made us a subreaper)."""
        self._on_orphan = on_orphan
        if self._orphan_check is None:
            self._orphan_check = self._loop.call_later(_ORPHAN_CHECK_S, self._check_orphans)

    def _check_orphans(self) -> None:
        self._orphan_check = self._loop.call_later(_ORPHAN_CHECK_S, self._check_orphans)
        while self._on_orphan is not None:
            pid = self._exited_child()
            if pid is None or pid in self._callbacks:
                return  # none, or its owner's pidfd has fired already
            self._on_orphan(pid)
            if pid not in self._callbacks:
                return  # not taken: left alone rather than collected for nobody
            self._check(pid, False)  # collected and reported now

    def close(self) -> None:
        self._close_all_fds()
        self._callbacks.clear()
        for timer in (self._poll, self._orphan_check):
            if timer is not None:
                timer.cancel()
        self._poll = self._orphan_check = None
        self._on_orphan = None

    def _close_all_fds(self) -> None:
        for fd in self._fds.values():
            self._loop.remove_reader(fd)
            self._close_fd(fd)
        self._fds.clear()

    def _poll_all(self) -> None:
        self._poll = None
        self.check_now()
        if self._callbacks:
            self._poll = self._loop.call_later(_POLL_S, self._poll_all)

    def _check(self, pid: int, exited: bool) -> None:
        """`exited`: its pidfd fired (or it was gone when watched), so a pid that is
        not our child has ended; otherwise a non-child is asked whether it runs."""
        if pid not in self._callbacks:
            return
        try:
            code = self._try_reap(pid)
        except process.NotOurChild:
            if not exited and self._is_running(pid):
                return
            code = None
        else:
            if code is None:
                # Running, or a multi-threaded child whose other threads are still
                # exiting: its pidfd stays readable, so this is asked again.
                return
        callback = self._callbacks[pid]
        self.forget(pid)
        callback(pid, code)
