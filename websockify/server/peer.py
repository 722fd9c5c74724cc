"""A client's address as log lines show it."""
from __future__ import annotations

from ..addresses import format_host_port


def format_peer(address: object) -> str:
    """`1.2.3.4:5678`, `[::1]:5678`, or what a Unix socket gives (`unix-client` for nothing)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return format_host_port(str(address[0]), int(address[1]))
    return str(address or "unix-client")
