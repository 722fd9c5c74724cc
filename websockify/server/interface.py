"""What the composition root (app.py) may use of a server: one interface, two kinds.

ProxyServer (server.py) serves the listening sockets on this event loop;
WorkerGroup (workers/group.py) has worker processes serve them. Either way the
session hooks (a session started / ended) are given to the constructor, so they
are not part of this interface.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from .listener import ListeningSocket


class Server(Protocol):
    @property
    def sockets(self) -> Sequence[ListeningSocket]:
        """The listening sockets, named in logs and `systemctl status`."""
        ...

    async def start(self) -> None:
        """Listen; returns once clients can connect."""
        ...

    def reload_tls(self) -> None:
        """SIGHUP: load the certificate again."""
        ...

    def stop_accepting(self) -> None:
        """--timeout, shutdown: close the listening sockets, keep the sessions."""
        ...

    async def shutdown(self, timeout_s: float) -> None:
        """Close every session (1001), waiting at most `timeout_s` for them."""
        ...
