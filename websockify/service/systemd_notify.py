"""systemd's notification protocol (sd_notify(3)), spoken directly: one datagram
per message to the Unix socket named by NOTIFY_SOCKET (`@name` is abstract).

READY=1 once every listener accepts (and a wrapped program is ready),
STATUS= lines for `systemctl status`, RELOADING=1 around SIGHUP, STOPPING=1,
and WATCHDOG=1 at half of WATCHDOG_USEC from the event loop itself, so a
stuck loop stops the keep-alives and systemd acts.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

log = logging.getLogger(__name__)

# Variables meant for us only: a wrapped program must not answer systemd for us.
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends notifications if systemd asked for them; does nothing otherwise."""

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None):
        self._address: str | None = None
        self._sock: socket.socket | None = None
        self.watchdog_interval_s: float | None = watchdog_usec / 2e6 if watchdog_usec else None
        self._last_status = ""
        self._watchdog: asyncio.TimerHandle | None = None
        if socket_path:
            self._address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> "Notifier":
        """Take systemd's variables out of the environment (children must not see them)."""
        path = os.environ.pop("NOTIFY_SOCKET", None)
        usec_text = os.environ.pop("WATCHDOG_USEC", "")
        watchdog_pid = os.environ.pop("WATCHDOG_PID", "")
        usec = int(usec_text) if usec_text.isdigit() else None
        if watchdog_pid and watchdog_pid != str(os.getpid()):
            usec = None  # the watchdog is someone else's
        return cls(path, usec)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> None:
        if self._sock is None or self._address is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), self._address)
        except OSError as exc:
            log.debug("cannot notify systemd: %s", exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
        self._last_status = status

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def start_watchdog(self) -> None:
        """WATCHDOG=1 now and every half period, from the running event loop."""
        if self._sock is None or self.watchdog_interval_s is None:
            return
        self.send("WATCHDOG=1")
        self._watchdog = asyncio.get_running_loop().call_later(self.watchdog_interval_s, self.start_watchdog)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
