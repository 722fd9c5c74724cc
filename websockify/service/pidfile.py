"""--pid-file: written atomically once listening, removed on a clean exit.

The number goes to a new temporary file made by mkstemp in the pid file's
directory (O_CREAT | O_EXCL, so a symbolic link planted there is never
followed), which then replaces the pid file by rename: the pid file is a
regular file of ours, whatever stood at that name before.

A file naming a process that no longer runs websockify is stale and replaced;
one naming a live websockify is an error, so two instances cannot share it.
"""
from __future__ import annotations

import os
import tempfile

from ..errors import StartupError


def _running_websockify(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return b"websockify" in file.read()
    except OSError:
        return False


class PidFile:
    def __init__(self, path: str):
        self.path = path

    def owner(self) -> int | None:
        try:
            with open(self.path) as file:
                text = file.read().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StartupError(f"--pid-file {self.path}: {exc.strerror}") from None
        return int(text) if text.isdigit() else None

    def check(self) -> None:
        """StartupError if another live websockify holds the file."""
        pid = self.owner()
        if pid is not None and pid != os.getpid() and _running_websockify(pid):
            raise StartupError(f"--pid-file {self.path}: websockify is already running as pid {pid}")

    def write(self) -> None:
        self.check()
        directory, name = os.path.split(os.path.abspath(self.path))
        temporary: str | None = None
        try:
            # mkstemp opens with O_CREAT | O_EXCL (| O_NOFOLLOW): never through a planted symlink.
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w") as file:
                os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the pid from other users
                file.write(f"{os.getpid()}\n")
            os.replace(temporary, self.path)
        except OSError as exc:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
            raise StartupError(f"--pid-file {self.path}: {exc.strerror or exc}") from None

    def remove(self) -> None:
        try:
            if self.owner() == os.getpid():
                os.unlink(self.path)
        except (OSError, StartupError):
            pass
