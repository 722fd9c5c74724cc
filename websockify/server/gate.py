"""The one place a client is admitted (or dropped) and given its handshake deadline.

Both ways in use it: the accept loop (TLS configured: the socket is admitted
before its first byte is peeked at) and a plain listener's connection, when the
event loop's own server hands it its transport. One deadline, set here, covers
everything before the relay: TLS, the request head, the origin check,
authentication, a token lookup and a Hixie-76 key.

What a flood makes happen once per socket (a drop, an eviction, a deadline
passed) is logged a few times per window and then counted (log_throttle.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..errors import Refusal
from ..metrics import meter
from ..service.log_throttle import CallAt, ThrottledLog
from .admission import Admission, Ticket
from .peer import format_peer

log = logging.getLogger(__name__)


def time_left_s(deadline: float, now: float, *, margin_s: float = 0.0, floor_s: float = 0.001) -> float:
    """What is left of a deadline, less `margin_s`, never under `floor_s` (a timeout of 0
    or less would mean no time at all, or none at all to some APIs)."""
    return max(deadline - now - margin_s, floor_s)


@dataclass(frozen=True, slots=True)
class Entry:
    """An admitted client: the ticket it holds until closed, its deadline in loop time, and
    its address (with --proxy-protocol, the one the balancer's header gave, not the socket's)."""

    ticket: Ticket
    deadline: float
    client: object = None


class Gate:
    def __init__(self, admission: Admission, handshake_timeout_s: float, clock: Callable[[], float],
                 call_at: CallAt | None = None):
        """`clock`: the event loop's time(), in which deadlines are given; `call_at`: the
        loop's, so that a count of lines left out is written when its window ends."""
        self.admission = admission
        self._handshake_timeout_s = handshake_timeout_s
        self._clock = clock
        self._dropped = ThrottledLog(log, logging.WARNING, "dropped: server full", clock, call_at)
        self._over_cap = ThrottledLog(log, logging.WARNING, "dropped: too many connections from one address",
                                      clock, call_at)
        self._evicted = ThrottledLog(log, logging.INFO, "evicted: idle before its request", clock, call_at)
        # For the connections and the accept loop: a client whose deadline passed.
        self.timed_out = ThrottledLog(log, logging.INFO, "dropped: handshake not complete", clock, call_at)

    def admit(self, address: object) -> Entry | None:
        """An Entry (its ticket may carry a 503 refusal), or None: close the socket at once."""
        admission = self.admission
        ip = address[0] if isinstance(address, tuple) else ""
        if admission.over_address_cap(ip):
            self._over_cap("%s: dropped: %d connections from its address (--max-connections-per-ip)",
                           format_peer(address), admission.max_per_ip)
            meter().handshake_failed(Refusal.LIMIT)
            return None
        evictions = admission.evictions
        ticket = admission.admit(ip)
        if admission.evictions != evictions and admission.evicted is not None:
            self._evicted("%s: evicted: the oldest client still sending its request, to make room for %s",
                          admission.evicted.ip or "unix-client", format_peer(address))
        if ticket is None:
            self._dropped("%s: dropped: %d connections open", format_peer(address), admission.total)
            meter().handshake_failed(Refusal.LIMIT)
            return None
        return Entry(ticket, self._clock() + self._handshake_timeout_s, address)
