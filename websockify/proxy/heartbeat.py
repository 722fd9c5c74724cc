"""--heartbeat: keep idle clients' NAT and proxy timers alive, and reap dead peers.

Every interval, as upstream's help promises, the client gets a ping, whether
or not it sent anything: what keeps a reverse proxy's read timer (nginx's
`proxy_read_timeout`) and NAT entries alive is what we send. A client from which
nothing at all (no pong, no data) came in the interval after a ping is taken
for dead; upstream pinged and never looked for the answer. While we are not
reading the client (flow control), it is neither pinged nor judged.
"""
from __future__ import annotations

import asyncio
from typing import Callable


class Heartbeat:
    __slots__ = ("_dead", "_heard", "_interval_s", "_loop", "_paused", "_ping", "_timer", "_waiting_for_pong")

    def __init__(self, interval_s: float, ping: Callable[[], None], dead: Callable[[], None],
                 paused: Callable[[], bool] = lambda: False):
        """`paused()`: we are not reading the client now, so its answer could not be heard."""
        self._interval_s = interval_s
        self._ping = ping
        self._dead = dead
        self._paused = paused
        self._loop = asyncio.get_running_loop()
        self._heard = True
        self._waiting_for_pong = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(interval_s, self._tick)

    def heard(self) -> None:
        """Anything from the client: data, a pong, a ping."""
        self._heard = True

    def _tick(self) -> None:
        if self._paused():
            self._waiting_for_pong = False
        elif self._waiting_for_pong and not self._heard:
            self._timer = None
            self._dead()
            return
        else:
            self._waiting_for_pong = True
            self._ping()
        self._heard = False
        self._timer = self._loop.call_later(self._interval_s, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
