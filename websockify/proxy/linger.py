"""How long a closing client is given: one timer per session, set only once it closes.

After our close frame (and our FIN), a client that reads what we queued before it
gets more time, one close timeout at a time; one that reads nothing, or does not
end its side, is cut off. A client that broke the protocol is not read any more:
it is cut as soon as the close frame has reached it (checked every
DELIVERY_CHECK_S), or when the close timeout finds it not reading that either.
"""
from __future__ import annotations

import asyncio

from ..sockopts import unsent_bytes

# After a failed client's close: how often to look whether the close frame has reached it.
DELIVERY_CHECK_S = 0.05


class ClientLinger:
    __slots__ = ("_client", "_close_timeout_s", "_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: asyncio.Transport, close_timeout_s: float):
        self._loop = loop
        self._client = client
        self._close_timeout_s = close_timeout_s
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Our side is closed: give the client a bounded time to end its own (once)."""
        if self._handle is None:
            # What is unsent is read when the timer fires: most clients are gone by then.
            self._handle = self._loop.call_later(self._close_timeout_s, self._check, -1)

    def start_failed(self) -> None:
        """The client broke the protocol and has our close frame: cut it once that is delivered."""
        self.cancel()
        deadline = self._loop.time() + self._close_timeout_s
        self._handle = self._loop.call_later(DELIVERY_CHECK_S, self._check_failed, deadline, -1)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _check(self, buffered_before: int) -> None:
        """A client still reading what we queued before the close gets more time;
        one that reads nothing (or does not end its side) is cut off."""
        buffered = unsent_bytes(self._client)
        if 0 < buffered and (buffered_before < 0 or buffered < buffered_before):
            self._handle = self._loop.call_later(self._close_timeout_s, self._check, buffered)
        else:
            self._client.abort()

    def _check_failed(self, deadline: float, buffered_before: int) -> None:
        buffered = unsent_bytes(self._client)
        if buffered and self._loop.time() < deadline:
            self._handle = self._loop.call_later(DELIVERY_CHECK_S, self._check_failed, deadline, buffered_before)
        elif buffered and (buffered_before < 0 or buffered < buffered_before):
            # Still reading what was queued before the close: another close timeout.
            self._handle = self._loop.call_later(
                DELIVERY_CHECK_S, self._check_failed, self._loop.time() + self._close_timeout_s, buffered)
        else:
            self._client.abort()  # delivered (or never to be): unread client bytes make this a reset
