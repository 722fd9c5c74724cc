"""The plugin worker pool: real threads, a real event loop."""
import asyncio
import threading
import time

import pytest

from websockify.proxy.workers import CallTimedOut, WorkerPool


def test_results_errors_and_timeouts():
    release = threading.Event()

    async def scenario():
        pool = WorkerPool(2, "test")
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
        pool = WorkerPool(3, "bounded")
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
