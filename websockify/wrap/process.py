"""Process control: the only module that spawns, signals or reaps processes.

websockify makes itself a child subreaper, so a wrapped program that
daemonizes (forks a server, then exits) leaves that server as our child: the
wrapped service is "the tree", every descendant of websockify except the
watchdog. The watchdog is a separate small process (watchdog.py) that outlives
a SIGKILLed websockify and then kills every process carrying this run's marker
in its environment.

No Python code runs between fork and exec here: once websockify has threads
(the recorder's writer, asyncio.to_thread workers), a forked copy of the
interpreter could deadlock on a lock some other thread held. What the wrapped
program needs set up in its own process (its death signal, its file limit)
rebind.so's constructor does after exec; see rebind.c.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Sequence

import psutil

from ..errors import StartupError

if TYPE_CHECKING:
    import ctypes

Process = psutil.Process

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    # Loaded on first use: only a wrapping websockify needs prctl().
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        import ctypes

        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def become_subreaper() -> None:
    """Orphans of our descendants become our children instead of init's."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def spawn(argv: Sequence[str], env: dict[str, str], cwd: str | None = None) -> int:
    """Start the wrapped command in its own session, in `cwd`; return its pid.

    The caller reaps it (reaper.py), so the Popen object is dropped at once.
    """
    process = subprocess.Popen(list(argv), env=env, cwd=cwd, start_new_session=True, close_fds=True,
                               restore_signals=True)
    process.returncode = 0  # reaped by the reaper, never by Popen; silences its destructor
    return process.pid


def spawn_worker(argv: Sequence[str], env: dict[str, str], fds: Sequence[int]) -> int:
    """Start a worker process (a fresh interpreter, not a fork) that inherits `fds`; its pid.

    Reaped by the reaper (reaper.py), like the wrapped program. It stays in our session and
    process group: a Ctrl-C at the terminal reaches it as it reaches us.
    """
    worker = subprocess.Popen(list(argv), env=env, pass_fds=tuple(fds), close_fds=True)
    worker.returncode = 0  # reaped by the reaper, never by Popen
    return worker.pid


def signal_pid(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Get `signum` when the parent dies (and at once if it already has)."""
    _prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)


def run_tool(argv: Sequence[str], env: dict[str, str] | None = None,
             timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a short helper (the C compiler, a loader check) to completion."""
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout_s)


class NotOurChild(Exception):
    """waitpid() on a pid that is not (or no longer) our child: its parent collects it."""


def try_reap(pid: int) -> int | None:
    """Collect `pid` if it has exited: its exit code as a shell reports it (128+N for
    signal N), or None while it runs. Only this pid: waitpid(-1) would take the
    exit of a child someone else waits for (subprocess.run's, say).

    Raises NotOurChild if it is not our child (a grandchild, or already reaped).
    """
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        raise NotOurChild(pid) from None
    if reaped == 0:
        return None
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def exited_child() -> int | None:
    """The pid of a child of ours that has exited, left uncollected (WNOWAIT): whoever
    owns it still collects it with try_reap. None if no child has exited."""
    try:
        found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    return found.si_pid if found is not None and found.si_pid else None


def open_exit_fd(pid: int) -> int | None:
    """A pidfd: a descriptor that polls readable once `pid` has exited (Linux 5.3+),
    child or not. None if the process is already gone (and reaped by its parent).

    Raises OSError (ENOSYS) where the kernel has no pidfd_open.
    """
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def tree(exclude: Sequence[int] = ()) -> list[psutil.Process]:
    """Our descendants that still count, minus `exclude`.

    A zombie that is our own child counts until we have reaped it: its exit
    status is the service's, and a multi-threaded process shows as a zombie
    before waitpid() can collect it (its other threads are still exiting).
    Another process's zombie does not count.
    """
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    me = os.getpid()
    alive = []
    for child in children:
        if child.pid in exclude:
            continue
        try:
            if child.status() != psutil.STATUS_ZOMBIE or child.ppid() == me:
                alive.append(child)
        except psutil.Error:
            continue
    return alive


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def direct_children(exclude: Sequence[int] = ()) -> list[psutil.Process]:
    return own_children(tree(exclude))


def own_children(processes: Sequence[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` whose parent is us."""
    me = os.getpid()
    return [p for p in processes if _ppid(p) == me]


def _ppid(process: psutil.Process) -> int | None:
    try:
        return process.ppid()
    except psutil.Error:
        return None


def send(processes: Sequence[psutil.Process], signum: int) -> None:
    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.Error:
            pass


def start_watchdog(marker: str) -> int:
    """Start the helper that kills the marked tree once websockify is gone, however it went.

    It waits for EOF on a pipe whose only write end websockify holds (the kernel
    closes it even on SIGKILL). It is a fresh interpreter (`python -m
    websockify.wrap.watchdog FD MARKER`) in its own session, holding none of
    our descriptors but the pipe. Returns its pid.
    """
    if not sys.executable:
        raise StartupError("cannot start the watchdog: the Python interpreter's path is unknown")
    read_end, write_end = os.pipe()  # both close-on-exec: the wrapped tree never holds them
    # Our own import path, first and without the working directory (-P), so the
    # watchdog imports the very websockify that is running.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.abspath(entry) for entry in sys.path)}
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-P", "-m", "websockify.wrap.watchdog", str(read_end), marker],
            pass_fds=[read_end], env=env, cwd="/", start_new_session=True, close_fds=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, restore_signals=True)
    except OSError as exc:
        os.close(write_end)
        raise StartupError(f"cannot start the watchdog: {exc.strerror or exc}") from None
    finally:
        os.close(read_end)
    watchdog.returncode = 0  # reaped by the reaper or stop_watchdog(), never by Popen
    _watchdog_pipes[watchdog.pid] = write_end
    return watchdog.pid


_watchdog_pipes: dict[int, int] = {}  # watchdog pid -> write end, open for our whole life


def stop_watchdog(pid: int, timeout_s: float = 2.0) -> None:
    """Normal exit: the tree is already gone, so let the watchdog finish now and reap it."""
    write_end = _watchdog_pipes.pop(pid, None)
    if write_end is not None:
        os.close(write_end)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def find_marked(marker: str) -> list[int]:
    """Pids whose environment holds the marker (NAME=VALUE), except our own."""
    needle = b"\0" + marker.encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in b"\0" + environ.read() + b"\0":
                    found.append(int(entry))
        except OSError:
            continue
    return found


def kill_marked(marker: str) -> int:
    """SIGKILL every process carrying the marker; return how many were found."""
    found = find_marked(marker)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(found)
