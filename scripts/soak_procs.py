"""The soak test's child processes: the echo target and websockify, and what we measure of them.

Children run in their own session (a Ctrl-C reaches only the soak script,
which then stops them in order) and get SIGKILL if the soak script itself
dies, so nothing is left behind even on `kill -9`.
"""
from __future__ import annotations

import ctypes
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

SCRIPTS = Path(__file__).resolve().parent
PR_SET_PDEATHSIG = 1


class SetupError(Exception):
    """The soak test cannot start: a one-line reason, exit code 2."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(argv: list[str], stdout: "int | IO[bytes]", stderr: "int | IO[bytes]") -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            start_new_session=True, preexec_fn=_die_with_parent)


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, a bounded wait, then SIGKILL and another bounded wait."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            print(f"soak: process {proc.pid} did not die after SIGKILL", file=sys.stderr)


def start_echo_server() -> tuple[subprocess.Popen[bytes], int]:
    proc = _spawn([sys.executable, str(SCRIPTS / "soak_echo.py")], subprocess.PIPE, subprocess.DEVNULL)
    try:
        line = _read_line(proc, 15.0)
    except SetupError:
        stop(proc)
        raise
    match = re.fullmatch(rb"port (\d+)\s*", line)
    if match is None:
        stop(proc)
        raise SetupError(f"the echo server said {line!r} instead of its port")
    return proc, int(match.group(1))


def _read_line(proc: subprocess.Popen[bytes], seconds: float) -> bytes:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(seconds):
            raise SetupError(f"the echo server did not start within {seconds:g}s")
    line = proc.stdout.readline()
    if not line:
        raise SetupError(f"the echo server exited with code {proc.wait(5)}")
    return line


def websockify_command() -> list[str]:
    """The websockify installed beside this Python (the project's venv), else the package."""
    script = Path(sys.executable).parent / "websockify"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "websockify"]


def start_websockify(command: list[str], target_port: int, max_connections: int,
                     log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    argv = [*command, "--max-connections", str(max_connections),
            "127.0.0.1:0", f"127.0.0.1:{target_port}"]
    with open(log_path, "wb") as log:
        proc = _spawn(argv, subprocess.DEVNULL, log)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise SetupError(f"websockify exited with code {proc.returncode}: {tail[0]}")
        time.sleep(0.05)
    stop(proc)
    raise SetupError("websockify did not report its port within 30s")


@dataclass(frozen=True)
class Reading:
    rss: int  # bytes
    fds: int
    cpu: float  # percent of one core since the last reading


class Probe:
    """RSS, open descriptors and CPU of one process."""

    def __init__(self, pid: int):
        self._process = psutil.Process(pid)
        self._process.cpu_percent(None)

    def read(self) -> Reading:
        """Raises psutil.NoSuchProcess when the process is gone (or a zombie: exited, not yet reaped)."""
        with self._process.oneshot():
            if self._process.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(self._process.pid)
            return Reading(self._process.memory_info().rss, self._process.num_fds(),
                           self._process.cpu_percent(None))


class OwnCpu:
    """This process's CPU use between two calls, in percent of one core."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def read(self) -> float:
        now = (time.monotonic(), time.process_time())
        wall, cpu = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return 100.0 * cpu / wall if wall > 0 else 0.0


def log_problems(log_path: Path) -> tuple[list[str], list[str]]:
    """websockify's warning lines and error lines; a traceback counts as an error."""
    warnings: list[str] = []
    errors: list[str] = []
    with open(log_path, errors="replace") as log:
        for line in log:
            if " WARNING " in line:
                warnings.append(line.rstrip())
            elif " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
                errors.append(line.rstrip())
    return warnings, errors


def file_limit_needed(connections: int, handshakes: int) -> int:
    """The open-file limit a run needs: websockify's descriptors at the peak, two per
    connection opening or open and its own few. The load generator (this process)
    and the echo server hold one per connection, so what fits websockify fits them."""
    return 2 * (connections + handshakes) + 32


def max_connections_fitting(hard_limit: int, handshakes: int) -> int:
    """The most connections whose file_limit_needed() is within `hard_limit`."""
    return max(0, (hard_limit - 32) // 2 - handshakes)


def choose_connections(asked: int | None, default: int, hard_limit: int, handshakes: int) -> tuple[int, str]:
    """The connection count to run with under `hard_limit`, and a line saying why when it is not
    the one asked for ("" otherwise). `asked` is --connections, None when not given: the default
    then shrinks to the most that fits, while a count asked for that does not fit is a SetupError."""
    connections = default if asked is None else asked
    needed = file_limit_needed(connections, handshakes)
    if hard_limit >= needed:
        return connections, ""
    fits = max_connections_fitting(hard_limit, handshakes)
    if fits == 0:
        raise SetupError(f"the open-file limit (hard {hard_limit}) fits no connections with --handshakes "
                         f"{handshakes}; raise it (ulimit -Hn as root) or lower --handshakes")
    if asked is not None:
        raise SetupError(f"{asked} connections need an open-file limit of {needed} for websockify, the hard "
                         f"limit here is {hard_limit}; raise it (ulimit -Hn as root) or use --connections {fits}")
    return fits, (f"the open-file limit (hard {hard_limit}) fits {fits} connections, not {default}; "
                  f"running with {fits}")


def ensure_file_limit(needed: int) -> int:
    """Raise our limits (the children inherit them) to `needed`; return the hard limit in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:  # works only with CAP_SYS_RESOURCE
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            soft = hard = needed
        except (ValueError, OSError):
            pass
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard if hard != resource.RLIM_INFINITY else 1 << 30
