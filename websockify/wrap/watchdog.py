"""The watchdog: `python -m websockify.wrap.watchdog FD MARKER`, started by process.start_watchdog.

It blocks reading FD, a pipe whose only write end websockify holds. When
websockify ends, however it ends (SIGKILL included), the kernel closes that end,
the read returns EOF, and the watchdog kills every process whose environment
carries MARKER (NAME=VALUE): the wrapped program and whatever it started, even
daemons that left its session. On a normal exit the tree is already gone and
the sweep finds nobody.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from typing import Sequence

from . import process

_SWEEP_PAUSE_S = 0.02
_MAX_SWEEPS = 100  # a process may fork while we sweep: sweep until one finds nobody


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit() or "=" not in argv[1]:
        print("usage: python -m websockify.wrap.watchdog FD NAME=VALUE", file=sys.stderr)
        return 2
    pipe, marker = int(argv[0]), argv[1]
    # Only the pipe ends us: a Ctrl-C or a hangup at websockify's terminal must
    # not take the watchdog down before websockify.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    while os.read(pipe, 1):
        pass
    for _ in range(_MAX_SWEEPS):
        if not process.kill_marked(marker):
            break
        time.sleep(_SWEEP_PAUSE_S)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
