"""How many clients one process takes: in total and per client address.

Every accepted socket holds a ticket until it is closed, whatever phase it is
in (TLS, request, relay). Past `max_connections` (or the per-address cap) a
plain client still gets a short 503 once its request head has arrived, so a
browser shows why (a TLS client is closed: a handshake is too dear to spend on
a refusal); past a small slack above that, it is closed at once, so a flood
costs no more than the slack in descriptors and memory.
"""
from __future__ import annotations

from ..errors import HttpError


class Ticket:
    """One admitted socket; `refusal` is set when it may only be told 503."""

    __slots__ = ("_admission", "ip", "refusal", "_released")

    def __init__(self, admission: "Admission", ip: str, refusal: HttpError | None):
        self._admission = admission
        self.ip = ip
        self.refusal = refusal
        self._released = False

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

    def admit(self, ip: str) -> Ticket | None:
        """A ticket, or None when the client must be closed without a word."""
        if self.total >= self.max_connections + self.slack:
            return None
        refusal = None
        if self.served >= self.max_connections:
            refusal = HttpError(503, "server busy: too many connections", (("Retry-After", "5"),))
        elif self.max_per_ip and self._per_ip.get(ip, 0) >= self.max_per_ip:
            refusal = HttpError(503, "too many connections from your address", (("Retry-After", "5"),))
        self.total += 1
        if refusal is None:
            self.served += 1
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        return Ticket(self, ip, refusal)

    def _release(self, ticket: Ticket) -> None:
        self.total -= 1
        if ticket.refusal is None:
            self.served -= 1
            left = self._per_ip[ticket.ip] - 1
            if left:
                self._per_ip[ticket.ip] = left
            else:
                del self._per_ip[ticket.ip]
