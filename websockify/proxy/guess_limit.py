"""Unknown tokens, throttled per client address.

A token is a capability: whoever guesses one reaches its target. Each client
address (an IPv6 client by its /64, as the admission counts it) may have
BURST lookups answered 404 at once, and one more every 1 / RATE_PER_S seconds
after that (a leaky bucket). Past it, the address's token requests get 429 with
`Retry-After`, without asking the plugin, until the bucket has room again. A
user who mistypes a token a few times never notices; a guesser makes one guess
a second instead of two thousand.

Clients behind one reverse proxy share its address and so its bucket, which
still allows a 404 every second to all of them together: enough for people,
too little for a script.
"""
from __future__ import annotations

import math
from typing import Callable

BURST = 10
RATE_PER_S = 1.0
# Addresses remembered at once. Past it, forgotten first: those whose bucket has
# drained, then the longest quiet; forgetting one only forgives its failures.
MAX_ADDRESSES = 65536


class GuessLimit:
    def __init__(self, clock: Callable[[], float], *, burst: int = BURST, rate_per_s: float = RATE_PER_S,
                 max_addresses: int = MAX_ADDRESSES):
        self._clock = clock
        self._burst = burst
        self._rate = rate_per_s
        self._max = max_addresses
        # key -> (failures not yet drained, when counted); oldest update first.
        self._level: dict[str, tuple[float, float]] = {}

    def retry_after_s(self, key: str) -> float:
        """0 when `key` may have its token looked up now; else the seconds until it may."""
        level = self._current(key)
        if level + 1 <= self._burst:
            return 0.0
        return (level + 1 - self._burst) / self._rate

    def failed(self, key: str) -> None:
        """`key` asked for a token that does not exist."""
        level = self._current(key) + 1
        self._level.pop(key, None)  # re-inserted last: the dict's order is the order of updates
        self._level[key] = (level, self._clock())
        if len(self._level) > self._max:
            self._forget()

    def __len__(self) -> int:
        return len(self._level)

    def _current(self, key: str) -> float:
        entry = self._level.get(key)
        if entry is None:
            return 0.0
        level, when = entry
        return max(0.0, level - (self._clock() - when) * self._rate)

    def _forget(self) -> None:
        now = self._clock()
        drained = [key for key, (level, when) in self._level.items() if level <= (now - when) * self._rate]
        for key in drained:
            del self._level[key]
        # Down to 7/8 of the bound, so the scan above runs once per max/8 new addresses.
        while len(self._level) > self._max - self._max // 8:
            del self._level[next(iter(self._level))]


def retry_after_header(seconds: float) -> tuple[tuple[str, str], ...]:
    """`Retry-After` in whole seconds, at least 1."""
    return (("Retry-After", str(max(1, math.ceil(seconds)))),)
