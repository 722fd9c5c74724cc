"""The one place a client is admitted (or dropped) and given its handshake deadline.

Both ways in use it: the accept loop (TLS configured: the socket is admitted
before its first byte is peeked at) and a plain listener's connection, when the
event loop's own server hands it its transport. One deadline, set here, covers
everything before the relay: TLS, the request head, the origin check,
authentication, a token lookup and a Hixie-76 key.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from .admission import Admission, Ticket
from .peer import format_peer

log = logging.getLogger(__name__)


def time_left_s(deadline: float, now: float, *, margin_s: float = 0.0, floor_s: float = 0.001) -> float:
    """What is left of a deadline, less `margin_s`, never under `floor_s` (a timeout of 0
    or less would mean no time at all, or none at all to some APIs)."""
    return max(deadline - now - margin_s, floor_s)


@dataclass(frozen=True, slots=True)
class Entry:
    """An admitted client: the ticket it holds until closed, and its deadline in loop time."""

    ticket: Ticket
    deadline: float


class Gate:
    def __init__(self, admission: Admission, handshake_timeout_s: float, clock: Callable[[], float]):
        """`clock`: the event loop's time(), in which deadlines are given."""
        self.admission = admission
        self._handshake_timeout_s = handshake_timeout_s
        self._clock = clock

    def admit(self, address: object) -> Entry | None:
        """An Entry (its ticket may carry a 503 refusal), or None: close the socket at once."""
        ticket = self.admission.admit(address[0] if isinstance(address, tuple) else "")
        if ticket is None:
            log.warning("%s: dropped: %d connections open", format_peer(address), self.admission.total)
            return None
        return Entry(ticket, self._clock() + self._handshake_timeout_s)
