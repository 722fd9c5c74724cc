"""Daemon mode (-D): detach, and tell the command line whether starting worked.

The foreground process forks, waits on a pipe and exits only when the daemon
reports: "ready" (it listens, and a wrapped program was started) → exit 0;
an error line → the line on stderr and the daemon's exit code. A daemon that
dies without a word is reported too. Upstream exits 0 at once and may die in
the background unseen.

The daemon: double fork with setsid between, stdin/stdout/stderr on
/dev/null, umask 022 (upstream's 0 made recordings world-writable), cwd `/`.
Paths were made absolute before (app.py), and log handlers are opened after,
so no descriptor is closed or reused under them.
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn


class StartupReport:
    """The daemon's end of the pipe to the waiting command line."""

    def __init__(self, fd: int | None):
        self._fd = fd

    def ready(self) -> None:
        self._send("ready\n")

    def failed(self, exit_code: int, line: str) -> None:
        self._send(f"error {exit_code} {line}\n")

    def _send(self, text: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, text.encode("utf-8", "replace"))
        except OSError:
            pass  # the command line is gone (killed): nobody to tell
        os.close(self._fd)
        self._fd = None


NO_REPORT = StartupReport(None)


def daemonize() -> StartupReport:
    """Return in the daemon; the foreground process exits with the daemon's verdict."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()  # not inherited by exec: a wrapped program never holds it
    if os.fork() > 0:
        os.close(write_end)
        _wait_for_report(read_end)
    os.close(read_end)
    os.setsid()  # no controlling terminal: a hang-up of the shell does not reach us
    if os.fork() > 0:
        os._exit(0)  # the session leader leaves; the daemon can never reacquire a terminal
    os.chdir("/")
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    return StartupReport(write_end)


def _wait_for_report(read_end: int) -> NoReturn:
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    try:
        os.wait()  # the first child, which exits once the daemon is forked
    except ChildProcessError:
        pass
    report = b"".join(chunks).decode("utf-8", "replace")
    if report.startswith("ready"):
        os._exit(0)
    if report.startswith("error "):
        _, code, line = report.rstrip("\n").split(" ", 2)
        print(line, file=sys.stderr, flush=True)
        os._exit(int(code))
    print("websockify: error: the daemon exited while starting (see its log)", file=sys.stderr, flush=True)
    os._exit(1)
