"""Session recording (--record FILE) on a background thread, so the relay never waits on disk.

Each session gets FILE.N, the first free number, created with O_EXCL and mode
0600: unique even when several processes record into one directory, and never
world-readable (recordings may hold credentials). The relay only queues
payloads. At most `max_pending_bytes` may wait unwritten in one process; past
that, the session that would exceed it stops recording, and its file says it
was cut short, rather than the relay slowing down or memory growing.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, TextIO

from ..os_threads import queue, threading
from ..protocol.recording import FOOTER, HEADER, encode_frame

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
_CUT_SHORT = "// recording cut short: the disk did not keep up\n"


class Recorder:
    def __init__(self, prefix: str, max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES):
        self._prefix = os.path.abspath(prefix)
        self._max_pending_bytes = max_pending_bytes
        self._queue: "queue.SimpleQueue[tuple[Any, ...]]" = queue.SimpleQueue()
        self._next_number = 1  # writer thread only
        # Each counter is written by one thread only, so no lock is needed.
        self.queued_bytes = 0
        self.written_bytes = 0
        # Started with the first session: websockify may still fork (the wrapping
        # watchdog) after building the recorder, and forking with threads is unsafe.
        self._thread = threading.Thread(target=self._write_loop, name="recorder", daemon=True)

    def session(self, about: str = "") -> "SessionRecording":
        """A session's recording; `about`: its first line (recording.about_line)."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()
        recording = SessionRecording(self, about)
        self._queue.put(("open", recording))
        return recording

    def close(self, timeout_s: float = 10.0) -> None:
        """Write everything queued and stop the thread."""
        if self._thread.ident is None:
            return  # never started: nothing was recorded
        self._queue.put(("stop", None))
        self._thread.join(timeout_s)

    def _enqueue(self, item: tuple[Any, ...], size: int) -> bool:
        if self.queued_bytes + size - self.written_bytes > self._max_pending_bytes:
            return False
        self.queued_bytes += size
        self._queue.put(item)
        return True

    # -- writer thread ---------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            kind, recording, *rest = self._queue.get()
            if kind == "stop":
                return
            try:
                if kind == "open":
                    recording.file, recording.path = self._create()
                    recording.file.write(recording.about + HEADER)
                elif recording.file is None:
                    pass  # the file could not be created; already logged
                elif kind == "data":
                    direction, offset_ms, data = rest
                    recording.file.write(encode_frame(direction, offset_ms, data))
                elif kind == "close":
                    recording.file.write(FOOTER)
                    if rest[0]:
                        recording.file.write(_CUT_SHORT)
                    recording.file.close()
                    recording.file = None
            except (OSError, ValueError) as exc:  # ValueError: a text the file cannot hold; this thread goes on
                log.error("recording %s failed: %s", recording.path or self._prefix,
                          getattr(exc, "strerror", None) or exc)
                recording.file = None
            finally:
                if kind == "data":
                    self.written_bytes += len(rest[2])

    def _create(self) -> tuple[TextIO, str]:
        while True:
            path = f"{self._prefix}.{self._next_number}"
            self._next_number += 1
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            log.info("recording session to %s", path)
            return os.fdopen(fd, "w", encoding="ascii", buffering=256 * 1024), path


class SessionRecording:
    """One session's recording; its methods are called from the event loop."""

    def __init__(self, recorder: Recorder, about: str = ""):
        self._recorder = recorder
        self.about = about
        self._opened = time.monotonic()
        self._cut_short = False
        self.file: TextIO | None = None  # writer thread only
        self.path: str | None = None

    def record(self, direction: str, data: bytes) -> None:
        if self._cut_short:
            return
        offset_ms = int((time.monotonic() - self._opened) * 1000)
        if not self._recorder._enqueue(("data", self, direction, offset_ms, data), len(data)):
            self._cut_short = True
            log.warning("recording cut short: more than %d bytes wait for the disk",
                        self._recorder._max_pending_bytes)

    def close(self) -> None:
        self._recorder._queue.put(("close", self, self._cut_short))
