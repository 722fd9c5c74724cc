"""Process control: the only module that spawns, signals or reaps processes.

websockify makes itself a child subreaper, so a wrapped program that
daemonizes (forks a server, then exits) leaves that server as our child: the
wrapped service is "the tree", every descendant of websockify except the
watchdog. The watchdog is a forked helper that outlives a SIGKILLed websockify
and then kills every process carrying this run's marker in its environment.
"""
from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import subprocess
import time
from typing import Optional, Sequence

import psutil

from ..fdlimit import INITIAL_NOFILE

Process = psutil.Process

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def become_subreaper() -> None:
    """Orphans of our descendants become our children instead of init's."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _in_child_before_exec() -> None:
    # Runs between fork and exec, so only system calls: die with us even if we
    # are SIGKILLed, and give the program the file limit it would have had.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    resource.setrlimit(resource.RLIMIT_NOFILE, INITIAL_NOFILE)


def spawn(argv: Sequence[str], env: dict[str, str]) -> int:
    """Start the wrapped command in its own session; return its pid.

    The caller reaps it (see reap), so the Popen object is dropped at once.
    """
    process = subprocess.Popen(
        list(argv), env=env, start_new_session=True, close_fds=True,
        preexec_fn=_in_child_before_exec, restore_signals=True,
    )
    process.returncode = 0  # reaped by reap(), never by Popen; silences its destructor
    return process.pid


def run_tool(argv: Sequence[str], env: Optional[dict[str, str]] = None,
             timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a short helper (the C compiler, a loader check) to completion."""
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout_s)


def reap() -> list[tuple[int, int]]:
    """Collect every exited child: [(pid, exit code as a shell reports it)]."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        code = os.waitstatus_to_exitcode(status)
        reaped.append((pid, code if code >= 0 else 128 - code))
    return reaped


def tree(exclude: Sequence[int] = ()) -> list[psutil.Process]:
    """Our living descendants (zombies are not alive), minus `exclude`."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    alive = []
    for child in children:
        if child.pid in exclude:
            continue
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.Error:
            continue
    return alive


def direct_children(exclude: Sequence[int] = ()) -> list[psutil.Process]:
    return [p for p in tree(exclude) if _ppid(p) == os.getpid()]


def _ppid(process: psutil.Process) -> Optional[int]:
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
    """Fork a helper that kills the marked tree once websockify is gone, however it went.

    It waits for EOF on a pipe whose only write end websockify holds (the kernel
    closes it even on SIGKILL). Returns the helper's pid.
    """
    read_end, write_end = os.pipe()  # both close-on-exec: the wrapped tree never holds them
    pid = os.fork()
    if pid == 0:  # the watchdog: no event loop, no logging, just wait and sweep
        try:
            # Hold nothing of websockify's (listening sockets above all) but the pipe.
            os.closerange(3, read_end)
            os.closerange(read_end + 1, _max_fd())
            os.setsid()  # a Ctrl-C at the terminal must not take it down early
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            while os.read(read_end, 1):
                pass
            for _ in range(3):  # a process may fork while we sweep
                for victim in find_marked(marker):
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.02)
        finally:
            os._exit(0)
    os.close(read_end)
    _watchdog_pipes[pid] = write_end
    return pid


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


def _max_fd() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 65536


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


def is_listening(port: int) -> bool:
    """Whether some TCP socket listens on `port` (any family): the service is ready."""
    try:
        connections = psutil.net_connections("tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)
