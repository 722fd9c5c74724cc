"""The processes the benchmark starts, and what /proc says about them.

Every child runs in its own session (a Ctrl-C at the terminal reaches only the
driver, which then stops them in order) and gets SIGKILL if the driver dies, so
nothing is left behind even on `kill -9`. A forking proxy's children share its
process group, so stopping the group stops them too.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from typing import IO, Callable, Optional, Sequence

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen[bytes]] = []


class BenchError(Exception):
    """A step of the benchmark failed: a one-line reason."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv: Sequence[str], *, stdin: int | None = subprocess.DEVNULL,
          stdout: int | IO[bytes] | None = subprocess.DEVNULL,
          stderr: int | IO[bytes] | None = subprocess.DEVNULL,
          cwd: Optional[str] = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd,
                            start_new_session=True, preexec_fn=_die_with_parent)
    _children.append(proc)
    return proc


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own session: the group id is its pid
    except ProcessLookupError:
        pass


def stop(proc: Optional[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """SIGTERM to the process group, a bounded wait, then SIGKILL."""
    if proc is None:
        return
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # forked children may outlive the leader: the group gets SIGKILL either way
    _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(proc.pid):
        print(f"bench: process group {proc.pid} did not die after SIGKILL", file=sys.stderr)
    for stream in (proc.stdin, proc.stdout):
        if stream:
            stream.close()
    if proc in _children:
        _children.remove(proc)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies are dead already)."""
    for name in os.listdir("/proc"):
        fields = _stat_fields(int(name)) if name.isdigit() else None
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_all() -> None:
    for proc in reversed(list(_children)):
        stop(proc, grace=2.0)


# ---- /proc ----

def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """root and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _run_ns(pid: int) -> Optional[int]:
    """Time on CPU of all of pid's threads, in ns (schedstat), or None if unknown."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return total


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of the processes, including children they already reaped (a
    forking proxy's). Live threads are read in ns: bulk windows last only tens of
    milliseconds, shorter than a few clock ticks."""
    total = 0.0
    for pid in pids:
        fields = _stat_fields(pid)
        if not fields:
            continue
        reaped = sum(int(x) for x in fields[13:15])  # cutime cstime
        ns = _run_ns(pid)
        own = ns / 1e9 if ns is not None else sum(int(x) for x in fields[11:13]) / CLK_TCK
        total += own + reaped / CLK_TCK
    return total


def memory_kb(pids: Sequence[int]) -> tuple[int, int]:
    """Summed RSS and PSS. RSS counts shared pages once per process; PSS splits them."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def system_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def busy_percent(seconds: float) -> float:
    """How busy the machine is now, in % of one core (200 = both cores of two)."""
    b0, t0 = system_ticks()
    time.sleep(seconds)
    b1, t1 = system_ticks()
    return 100.0 * (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def mem_available_kb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def listening(port: int) -> bool:
    """Whether something listens on port (read from /proc: no connection is made)."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except OSError:
            continue
    return False


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc.poll() is not None:
            raise BenchError(f"exited with status {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise BenchError(f"not listening on port {port} after {timeout:.0f} s")
        time.sleep(0.05)


class LineReader:
    """Lines from a child's stdout, each awaited with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes], describe_exit: Callable[[], str]):
        assert proc.stdout is not None
        self.proc, self.fd, self.buf = proc, proc.stdout.fileno(), b""
        self.describe_exit = describe_exit

    def expect(self, prefix: str, timeout: float,
               watchdog: Optional[Callable[[], None]] = None) -> str:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(prefix):
                    return text[len(prefix):].strip()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no '{prefix.strip()}' from the load generator within {timeout:.0f} s")
            ready, _, _ = select.select([self.fd], [], [], min(0.5, left))
            if watchdog:
                watchdog()
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.proc.wait(5)
                    raise BenchError(self.describe_exit())
                self.buf += chunk
