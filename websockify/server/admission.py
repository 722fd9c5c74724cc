"""How many clients one process takes: in total and per client address.

Every accepted socket holds a ticket until it is closed, whatever phase it is
in (TLS, request, relay). A client past the per-address cap is closed at once
and takes nothing from the shared pool (IPv6 clients are counted by their /64:
one host holds a whole /64). When the pool (`max_connections`) is full, the
oldest client still sending its request head is evicted to make room, as nginx
and HAProxy do with idle connections, so idle sockets cannot lock out a new
honest client, and never an established session. Only when no such client is
left does a plain client get a short 503 once its request head has arrived, so
a browser shows why (a TLS client is closed: a handshake is too dear to spend on
a refusal); past a small slack above that, it is closed at once, so a flood
costs no more than the slack in descriptors and memory.
"""
from __future__ import annotations

import ipaddress
from typing import Callable

from ..errors import HttpError, Refusal


def address_key(ip: str) -> str:
    """What the per-address cap counts: an IPv4 address as it is, an IPv6 one by its
    /64 (`2001:db8:1:2::/64`), an IPv4-mapped IPv6 one as its IPv4 address."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip.partition("%")[0])  # less a zone (fe80::1%eth0)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"


def _nothing() -> None:
    pass


class Ticket:
    """One admitted socket; `refusal` is set when it may only be told 503.

    `on_evict` is what the ticket's holder does when the admission evicts its
    client to make room (close the socket); a served ticket may be evicted until
    `head_complete()` says its client no longer keeps us waiting."""

    __slots__ = ("_admission", "ip", "key", "on_evict", "refusal", "_released")

    def __init__(self, admission: "Admission", ip: str, key: str, refusal: HttpError | None):
        self._admission = admission
        self.ip = ip
        self.key = key
        self.refusal = refusal
        self.on_evict: Callable[[], None] = _nothing
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def head_complete(self) -> None:
        """The client sent its whole request: no longer idle, never evicted."""
        self._admission._waiting.pop(self, None)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(self)


# Descriptors kept for everything but clients: listeners, logs, the event loop, plugins.
RESERVED_DESCRIPTORS = 32


class Admission:
    def __init__(self, max_connections: int, max_per_ip: int = 0, descriptors: int | None = None):
        """`descriptors`: the open-file limit. A served client holds two (its socket
        and its target's), a refused one one: past what the limit allows, accepting
        more clients would only starve the target connections of those accepted."""
        self.slack = max(64, max_connections // 8)
        if descriptors is not None:
            available = max(descriptors - RESERVED_DESCRIPTORS, 4)
            if 2 * max_connections + self.slack > available:
                # The clients asked for come first; the slack gets what is left, at least a little.
                self.slack = max(min(self.slack, available - 2 * max_connections), min(16, available // 4))
                max_connections = max(1, min(max_connections, (available - self.slack) // 2))
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.total = 0
        self.served = 0  # tickets without a refusal
        self._per_ip: dict[str, int] = {}
        # Served tickets whose client has not sent its whole request head yet, oldest first
        # (a dict keeps insertion order: popping the first is O(1)).
        self._waiting: dict[Ticket, None] = {}
        self.evicted: Ticket | None = None  # the last one evicted (for its log line)
        self.evictions = 0

    def over_address_cap(self, ip: str) -> bool:
        return bool(self.max_per_ip) and self._per_ip.get(address_key(ip), 0) >= self.max_per_ip

    def admit(self, ip: str) -> Ticket | None:
        """A ticket, or None when the client must be closed without a word (see
        `over_address_cap` for why). May evict the oldest idle client to make room."""
        key = address_key(ip)
        if self.max_per_ip and self._per_ip.get(key, 0) >= self.max_per_ip:
            return None
        if self.served >= self.max_connections:
            self.evict_oldest()
        if self.total >= self.max_connections + self.slack:
            return None
        refusal = None
        if self.served >= self.max_connections:
            refusal = HttpError(503, "server busy: too many connections", (("Retry-After", "5"),), reason=Refusal.LIMIT)
        self.total += 1
        ticket = Ticket(self, ip, key, refusal)
        if refusal is None:
            self.served += 1
            self._per_ip[key] = self._per_ip.get(key, 0) + 1
            self._waiting[ticket] = None
        return ticket

    def move(self, ticket: Ticket, ip: str) -> bool:
        """The client is `ip` (a trusted proxy said so after the socket was admitted):
        count it there. False when that address is at its cap (the ticket stays as it was)."""
        key = address_key(ip)
        if key == ticket.key or ticket.refusal is not None or ticket.released:
            ticket.ip, ticket.key = ip, key
            return True
        if self.max_per_ip and self._per_ip.get(key, 0) >= self.max_per_ip:
            return False
        left = self._per_ip[ticket.key] - 1
        if left:
            self._per_ip[ticket.key] = left
        else:
            del self._per_ip[ticket.key]
        self._per_ip[key] = self._per_ip.get(key, 0) + 1
        ticket.ip, ticket.key = ip, key
        return True

    def evict_oldest(self) -> Ticket | None:
        """Release the oldest served ticket still waiting for its client's head and have
        its holder close the client; None when every served client has sent its head."""
        if not self._waiting:
            return None
        ticket = next(iter(self._waiting))
        ticket.release()  # leaves _waiting too
        self.evicted = ticket
        self.evictions += 1
        ticket.on_evict()
        return ticket

    @property
    def waiting(self) -> int:
        """Served clients still sending their request head (the ones eviction may close)."""
        return len(self._waiting)

    def _release(self, ticket: Ticket) -> None:
        self.total -= 1
        if ticket.refusal is None:
            self._waiting.pop(ticket, None)
            self.served -= 1
            left = self._per_ip[ticket.key] - 1
            if left:
                self._per_ip[ticket.key] = left
            else:
                del self._per_ip[ticket.key]
