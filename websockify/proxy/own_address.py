"""Is a target we just reached our own listening socket?

A token (or a target on the command line) that names websockify's own port
makes each session open another through us, which opens another: one client
once built 400 nested sessions in under 3 s. Names resolve late and a listener
on 0.0.0.0 answers on every local address, so the check is made on the
connected socket: its peer is one of our listening addresses, or has our
port on an address of this host.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Iterable

_WILDCARDS = frozenset({"0.0.0.0", "::"})


def _normal(host: str) -> str:
    """An address as comparable text: IPv4-mapped IPv6 as IPv4, no zone."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class OwnListeners:
    """The addresses this process listens on, from its listening sockets."""

    def __init__(self, sockets: Iterable[socket.socket]):
        self._tcp: dict[int, set[str]] = {}  # port -> hosts bound (a wildcard: every local address)
        self._unix: set[str] = set()
        for sock in sockets:
            name = sock.getsockname()
            if sock.family == socket.AF_UNIX:
                if name:
                    self._unix.add(name.decode(errors="surrogateescape") if isinstance(name, bytes) else name)
            else:
                self._tcp.setdefault(int(name[1]), set()).add(_normal(name[0]))

    def __bool__(self) -> bool:
        return bool(self._tcp or self._unix)

    def reached(self, peer: Any, family: int) -> bool:
        """Is `peer` (a connected socket's getpeername()) one of our listeners?"""
        if family == socket.AF_UNIX:
            path = peer.decode(errors="surrogateescape") if isinstance(peer, bytes) else peer
            return bool(path) and path in self._unix
        if not isinstance(peer, tuple) or len(peer) < 2:
            return False
        hosts = self._tcp.get(int(peer[1]))
        if not hosts:
            return False
        host = _normal(str(peer[0]))
        if host in hosts:
            return True
        if hosts & _WILDCARDS:
            return ipaddress.ip_address(host).is_loopback or _is_local(host)
        return False


def _is_local(host: str) -> bool:
    """Is `host` an address of this machine? Only a local address can be bound (checked
    only when a target has the port of a wildcard listener, so rarely)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True
