"""One budget per loop turn for every backlogged session: the queue alone, then relays
flooding together, turn by turn."""
from __future__ import annotations

import asyncio

from fakes import Browser, FakeConnector, FakeTransport, open_session, run, turns, turns_until

from websockify.protocol.websocket import FRAMES_PER_CALL
from websockify.proxy.fairness import FairQueue, fair_queue
from websockify.proxy.pump import Relay

KIB = 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Backlog:
    """A session with `slices` slices unread; each costs `cost_s` on the clock."""

    def __init__(self, name: str, queue: FairQueue, clock: Clock, slices: int, cost_s: float = 0.001) -> None:
        self.name, self.queue, self.clock, self.left, self.cost_s = name, queue, clock, slices, cost_s
        self.served: list[str] = []

    def drain_backlog(self) -> None:
        self.clock.now += self.cost_s
        self.left -= 1
        self.served.append(self.name)
        if self.left:
            self.queue.enqueue(self)


def test_sessions_are_served_round_robin_within_one_budget_per_turn():
    async def scenario():
        clock, order = Clock(), []
        queue = FairQueue(asyncio.get_running_loop(), budget_s=0.002, clock=clock)
        sessions = [Backlog(name, queue, clock, 3) for name in "abc"]
        for session in sessions:
            session.served = order  # one record of the order across sessions
            queue.enqueue(session)
        per_turn = []
        while len(queue):
            before = len(order)
            await turns(1)
            per_turn.append(len(order) - before)
        assert order == list("abc" * 3)
        assert per_turn == [2, 2, 2, 2, 1]  # 2 ms a turn, 1 ms a slice
    run(scenario)


def test_a_turn_serves_one_slice_even_over_the_budget():
    async def scenario():
        clock = Clock()
        queue = FairQueue(asyncio.get_running_loop(), budget_s=0.002, clock=clock)
        slow = Backlog("slow", queue, clock, 2, cost_s=0.010)
        queue.enqueue(slow)
        await turns(1)
        assert slow.left == 1
        await turns(1)
        assert slow.left == 0 and len(queue) == 0
    run(scenario)


def test_a_session_that_queues_again_waits_for_the_next_turn():
    async def scenario():
        clock = Clock()
        queue = FairQueue(asyncio.get_running_loop(), budget_s=1.0, clock=clock)  # budget enough for all
        alone = Backlog("alone", queue, clock, 5)
        queue.enqueue(alone)
        await turns(1)
        assert alone.left == 4  # not all five slices in one turn
        assert await turns_until(lambda: alone.left == 0, "every slice") == 4
        assert queue.turns == 5
    run(scenario)


def test_one_queue_per_event_loop():
    async def first() -> FairQueue:
        loop = asyncio.get_running_loop()
        assert fair_queue(loop) is fair_queue(loop)
        return fair_queue(loop)

    assert run(first) is not run(first)


# -- relays flooding together ------------------------------------------------------------

class Flooder:
    def __init__(self) -> None:
        self.client = FakeTransport()
        self.connector = FakeConnector()
        self.browser = Browser()
        self.relay = Relay(self.client, open_session(), self.connector, peer="flooder",
                           write_buffer_bytes=1 << 30, close_timeout_s=5.0)
        self.client.set_write_buffer_limits(high=1 << 30)

    @property
    def delivered(self) -> int:
        transport = self.connector.transport
        return len(transport.written) if transport is not None else 0

    def send(self, data: bytes) -> None:
        buffer = bytearray(data)  # as the server hands it over: a view of a reused buffer
        with memoryview(buffer) as view:
            self.relay.client_data(view)


def tiny_frames(browser: Browser, count: int) -> bytes:
    return b"".join(browser.binary(bytes([i % 251])) for i in range(count))


def test_many_flooders_share_one_budget_per_turn():
    """Ten sessions each holding 8 slices of one-byte frames: with the budget at its
    least (one slice a turn), a turn reads one slice of one session, not one of each;
    the sessions take turns, and every payload arrives in order."""
    async def scenario():
        queue = fair_queue(asyncio.get_running_loop())
        queue._budget_s = 0.0  # one slice a turn, whatever the machine's speed
        flooders = [Flooder() for _ in range(10)]
        for flooder in flooders:
            flooder.relay.start()
        await turns_until(lambda: all(f.connector.settled for f in flooders), "the connects")
        await turns(1)
        frames = 8 * FRAMES_PER_CALL
        sent = [tiny_frames(f.browser, frames) for f in flooders]
        for flooder, data in zip(flooders, sent):
            flooder.send(data)  # each: one slice at once, the rest waits its turns
        assert [f.delivered for f in flooders] == [FRAMES_PER_CALL] * 10
        assert not any(f.client.reading for f in flooders)
        for turn in range(20):
            before = sum(f.delivered for f in flooders)
            await turns(1)
            assert sum(f.delivered for f in flooders) - before <= FRAMES_PER_CALL, f"turn {turn}"
        # Twenty turns: each session had two slices more, none had more.
        assert [f.delivered for f in flooders] == [3 * FRAMES_PER_CALL] * 10
        await turns_until(lambda: all(f.delivered == frames for f in flooders), "every payload", 200)
        for flooder in flooders:
            assert bytes(flooder.connector.transport.written) == bytes(i % 251 for i in range(frames))
        await turns_until(lambda: all(f.client.reading for f in flooders), "reading to resume")
    run(scenario)


def test_a_client_that_leaves_with_frames_unread_has_them_delivered_in_turns_then_eof():
    """The backlog of a client gone is read slice by slice (not in one go, which would
    hold the loop), and the target's EOF follows its last byte."""
    async def scenario():
        queue = fair_queue(asyncio.get_running_loop())
        queue._budget_s = 0.0
        flooder = Flooder()
        flooder.relay.start()
        await turns_until(lambda: flooder.connector.settled, "the connect")
        await turns(1)
        frames = 6 * FRAMES_PER_CALL
        flooder.send(tiny_frames(flooder.browser, frames))
        flooder.client.abort()  # the client vanishes: connection_lost() in the next turn
        await turns(1)
        flooder.relay.client_lost()
        assert flooder.delivered < frames
        assert not flooder.connector.transport.eof_written
        spent = await turns_until(lambda: flooder.connector.transport.eof_written, "the target's EOF")
        assert spent >= 3
        assert flooder.delivered == frames
    run(scenario)


def test_a_client_eof_with_frames_unread_ends_the_target_after_them():
    async def scenario():
        queue = fair_queue(asyncio.get_running_loop())
        queue._budget_s = 0.0
        flooder = Flooder()
        flooder.relay.start()
        await turns_until(lambda: flooder.connector.settled, "the connect")
        await turns(1)
        frames = 4 * FRAMES_PER_CALL
        flooder.send(tiny_frames(flooder.browser, frames) + flooder.browser.close())
        flooder.relay.client_eof()
        assert not flooder.connector.transport.eof_written
        await turns_until(lambda: flooder.connector.transport.eof_written, "the target's EOF")
        assert flooder.delivered == frames
        assert flooder.client.eof_written  # the close was answered
    run(scenario)
