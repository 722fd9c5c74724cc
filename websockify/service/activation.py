"""Listening sockets handed over by systemd (sd_listen_fds(3)): LISTEN_FDS
descriptors from 3 on, meant for us when LISTEN_PID is our pid."""
from __future__ import annotations

import os

FIRST_FD = 3
ACTIVATION_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def activated() -> bool:
    """Whether systemd passed us listening sockets (the environment is left alone)."""
    return os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS", "0") not in ("", "0")


def take_listen_fds() -> list[tuple[int, str]]:
    """[(fd, name)] passed to us, and the variables removed so that no child takes them."""
    mine = os.environ.get("LISTEN_PID") == str(os.getpid())
    count_text = os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for name in ACTIVATION_VARIABLES:
        os.environ.pop(name, None)
    if not mine or not count_text.isdigit():
        return []
    count = int(count_text)
    return [(FIRST_FD + i, names[i] if i < len(names) and names[i] else "unknown") for i in range(count)]
