"""The plugin lookup threads: real threads, a real event loop."""
import asyncio
import threading
import time

import pytest

from websockify.proxy.lookup_threads import CallRaised, CallTimedOut, LookupThreads, OverBudget


def test_results_errors_and_timeouts():
    release = threading.Event()

    async def scenario():
        pool = LookupThreads(2, "test")
        assert await pool.run(lambda a, b: a + b, 2, 3, timeout_s=5) == 5
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0, timeout_s=5)
        started = time.monotonic()
        with pytest.raises(CallTimedOut):
            await pool.run(release.wait, 60, timeout_s=0.2)
        assert time.monotonic() - started < 2
        # One worker is stuck; the other still answers.
        assert await pool.run(lambda: "free", timeout_s=5) == "free"
        release.set()
        pool.close()

    asyncio.run(scenario())


def test_workers_are_daemons_and_bounded():
    release = threading.Event()

    running = []

    def call() -> bool:
        running.append(threading.current_thread())
        return release.wait(60)

    async def scenario():
        pool = LookupThreads(3, "bounded")
        calls = [asyncio.ensure_future(pool.run(call, timeout_s=5)) for _ in range(10)]
        async with asyncio.timeout(5):  # every call is queued; three of them are running
            while len(running) < 3:
                await asyncio.sleep(0.01)
        names = [t for t in threading.enumerate() if t.name.startswith("bounded-")]
        assert len(names) == 3 and all(t.daemon for t in names)
        release.set()
        assert all(await asyncio.gather(*calls))
        pool.close()

    asyncio.run(scenario())


class Holding:
    """A call that holds its thread until `release` is set; `started` tells it has begun."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.started = threading.Event()

    def __call__(self) -> bool:
        self.started.set()
        return self.release.wait(60)


async def until(event: threading.Event) -> None:
    """Wait, bounded and without blocking the loop, for a pool thread to set `event`."""
    assert await asyncio.to_thread(event.wait, 10), "the call never started"


def test_abandoned_calls_are_skipped_and_waiting_calls_are_capped():
    release = threading.Event()
    holding = Holding(release)
    ran = []

    async def scenario():
        pool = LookupThreads(1, "capped", max_waiting=5)
        first = asyncio.ensure_future(pool.run(holding, timeout_s=5))  # holds the only worker
        await until(holding.started)
        for i in range(5):  # they wait, time out, and are abandoned
            with pytest.raises(CallTimedOut):
                await pool.run(ran.append, i, timeout_s=0.01)
        release.set()
        assert await first
        # The freed worker skips the abandoned calls on its own thread; until then they count.
        async with asyncio.timeout(10):
            while pool.waiting:
                await asyncio.sleep(0.01)
        assert await pool.run(lambda: "fresh", timeout_s=5) == "fresh"
        assert ran == []  # the abandoned calls never ran
        release.clear()
        holding.started.clear()
        blocker = asyncio.ensure_future(pool.run(holding, timeout_s=5))
        await until(holding.started)
        waiting = [asyncio.ensure_future(pool.run(ran.append, i, timeout_s=5)) for i in range(5)]
        await asyncio.sleep(0)
        with pytest.raises(CallTimedOut, match="wait for a worker already"):
            await pool.run(ran.append, 99, timeout_s=5)
        release.set()
        await asyncio.gather(blocker, *waiting)
        pool.close()

    asyncio.run(scenario())


def raiser(exc: BaseException):
    def call():
        raise exc
    return call


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), asyncio.CancelledError(), GeneratorExit()])
def test_a_call_raising_what_is_not_an_exception_is_an_ordinary_failure(exc):
    async def scenario():
        pool = LookupThreads(1, "raises")
        with pytest.raises(CallRaised) as caught:
            await pool.run(raiser(exc), timeout_s=5)
        assert caught.value.raised is exc and isinstance(caught.value, Exception)
        assert await pool.run(lambda: "still serving", timeout_s=5) == "still serving"
        pool.close()
        return "survived"

    assert asyncio.run(scenario()) == "survived"


def test_the_budget_counts_abandoned_calls_until_they_finish():
    release = threading.Event()
    holders = [Holding(release) for _ in range(2)]

    async def scenario():
        pool = LookupThreads(4, "budget", budget=2)
        for holding in holders:  # each hangs, is abandoned by its caller, and keeps running
            call = asyncio.ensure_future(pool.run(holding, timeout_s=60))
            await until(holding.started)
            call.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await call
        assert pool.unfinished == 2
        started = time.monotonic()
        with pytest.raises(OverBudget, match="budget 2"):  # refused at once, not after its timeout
            await pool.run(lambda: "never", timeout_s=60)
        assert time.monotonic() - started < 1
        release.set()  # the hung calls end: capacity returns
        async with asyncio.timeout(10):
            while pool.unfinished:
                await asyncio.sleep(0.01)
        assert await pool.run(lambda: "back", timeout_s=5) == "back"
        assert pool.unfinished == 0
        pool.close()

    asyncio.run(scenario())
