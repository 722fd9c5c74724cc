"""A small pool of threads for plugin calls that may block (token lookups, auth checks).

Plugins written for upstream block (a file read, an HTTP request, a slow
authenticator); run on the event loop they would stall every client. Unlike
asyncio's default executor, the threads are daemons: a plugin stuck forever
occupies one worker but cannot hold websockify at exit, and a caller gives up
after its timeout while the other workers keep serving.

Whatever a call raises, the process survives: SystemExit, KeyboardInterrupt
and other BaseExceptions that are not Exceptions reach the caller wrapped in
CallRaised, an ordinary Exception. A pool may have a budget: the calls not yet
finished on a worker (queued or running, abandoned ones included, since a
thread cannot be killed) may not exceed it; past it a call is refused at once
(OverBudget) and capacity returns as the calls finish.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, TypeVar

from ..os_threads import queue, threading

log = logging.getLogger(__name__)

T = TypeVar("T")
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class CallTimedOut(Exception):
    """The call did not return in time (it may still be running on its worker),
    or too many calls wait already."""


class OverBudget(CallTimedOut):
    """As many calls as the budget allows are unfinished (some may hang): refused at once."""


class CallRaised(Exception):
    """The call raised a BaseException that is not an Exception (SystemExit,
    KeyboardInterrupt, ...): a plugin's failure, never the end of the process."""

    def __init__(self, raised: BaseException):
        super().__init__(f"the call raised {raised!r}")
        self.raised = raised


class LookupThreads:
    def __init__(self, max_workers: int, name: str, max_waiting: int | None = None,
                 budget: int | None = None):
        self._max_workers = max_workers
        self._budget = budget
        self._unfinished = 0  # calls put and not yet finished or skipped by a worker
        # Clients that time out and come back must not pile up calls a slow backend never answers.
        self._max_waiting = max_waiting if max_waiting is not None else 64 * max_workers
        self._name = name
        self._jobs: "queue.SimpleQueue[_Job | None]" = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Calls queued for a worker, abandoned ones included until a worker skips them."""
        return self._jobs.qsize()

    @property
    def unfinished(self) -> int:
        """Calls queued or running, abandoned ones included: what the budget counts."""
        return self._unfinished

    async def run(self, function: Callable[..., T], *args: Any, timeout_s: float | None) -> T:
        """`function(*args)` on a worker; CallTimedOut after `timeout_s` (None: never)."""
        if self.waiting >= self._max_waiting:
            raise CallTimedOut(f"{self.waiting} calls wait for a worker already")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._budget is not None and self._unfinished >= self._budget:
                raise OverBudget(f"{self._unfinished} calls are unfinished already (budget {self._budget})")
            self._unfinished += 1
        self._jobs.put((lambda: function(*args), loop, future))
        self._grow()
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            raise CallTimedOut(f"no answer within {timeout_s:g}s") from None
        finally:
            future.cancel()  # nobody waits any more: a worker that has not started it skips it

    def _grow(self) -> None:
        with self._lock:
            if self._jobs.qsize() <= self._idle or len(self._threads) >= self._max_workers:
                return
            thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads) + 1}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is None:
                return
            call, loop, future = job
            try:
                if future.cancelled():  # abandoned while it waited (read from another thread: a hint only)
                    continue
                result, error = self._call(call)
            finally:
                with self._lock:
                    self._unfinished -= 1
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                return  # the loop is closed: websockify is exiting

    @staticmethod
    def _call(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        try:
            return call(), None
        except Exception as exc:  # handed to the caller as it is
            return None, exc
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: never raised in the caller's task
            return None, CallRaised(exc)

    def close(self) -> None:
        """Let idle workers end; a stuck one ends with the process."""
        for _ in self._threads:
            self._jobs.put(None)


def _settle(future: "asyncio.Future[Any]", result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
