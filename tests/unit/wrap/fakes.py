"""Fakes for the process side: an event loop whose readers the test fires, and a kernel."""
import errno
from typing import Callable

from websockify.wrap import process
from websockify.wrap.reaper import ChildReaper


class FakeLoop:
    """Readers and timers that the test fires by hand."""

    def __init__(self) -> None:
        self.readers: dict[int, tuple[Callable[..., object], tuple[object, ...]]] = {}
        self.soon: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        self.timers: list[tuple[float, Callable[..., object]]] = []

    def add_reader(self, fd, callback, *args):
        self.readers[fd] = (callback, args)

    def remove_reader(self, fd):
        return self.readers.pop(fd, None) is not None

    def call_soon(self, callback, *args):
        self.soon.append((callback, args))

    def call_later(self, delay, callback, *args):
        self.timers.append((delay, callback))

        class Handle:
            def cancel(handle) -> None:
                self.timers.remove((delay, callback))
        return Handle()

    def fire(self, fd: int) -> None:
        callback, args = self.readers[fd]
        callback(*args)

    def run_soon(self) -> None:
        pending, self.soon = self.soon, []
        for callback, args in pending:
            callback(*args)

    def run_timers(self) -> None:
        pending, self.timers = self.timers, []
        for _, callback in pending:
            callback()


class Kernel:
    """Processes as the reaper sees them: pidfds, exit codes, whose children they are."""

    def __init__(self) -> None:
        self.children: dict[int, int | None] = {}  # our children: exit code once exited
        self.others: dict[int, bool] = {}  # not ours: running?
        self.reaped: list[int] = []
        self.closed: list[int] = []
        self.pidfds = True

    def try_reap(self, pid: int) -> int | None:
        if pid not in self.children:
            raise process.NotOurChild(pid)
        code = self.children[pid]
        if code is not None:
            del self.children[pid]
            self.reaped.append(pid)
        return code

    def open_exit_fd(self, pid: int) -> int | None:
        if not self.pidfds:
            raise OSError(errno.ENOSYS, "no pidfd_open")
        if pid not in self.children and pid not in self.others:
            return None
        return 1000 + pid

    def exited_child(self) -> int | None:
        """waitid(WNOWAIT): an exited child of ours, left uncollected."""
        return next((pid for pid, code in self.children.items() if code is not None), None)

    def is_running(self, pid: int) -> bool:
        return self.others.get(pid, False)

    def reaper(self, loop: FakeLoop) -> ChildReaper:
        return ChildReaper(loop, self.try_reap, self.open_exit_fd, self.is_running, self.closed.append,
                           self.exited_child)
