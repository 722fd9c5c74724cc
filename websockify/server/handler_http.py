"""A plain HTTP request answered by an embedding program's handler class, on a thread.

A RequestHandlerClass that overrides `send_head`, `translate_path`, `send_error`
or `do_GET` (nova's guards against an open redirect) answers GET and HEAD
itself, as upstream's SimpleHTTPRequestHandler base did. Its thread writes the
response through this exchange: each write crosses to the event loop and waits
while the client's write buffer is full, so a large file never piles up in
memory. The connection closes when the handler returns.
"""
from __future__ import annotations

import asyncio

from ..os_threads import threading
from ..protocol.http import error_response


class HttpExchange:
    def __init__(self, transport: asyncio.Transport, writable: asyncio.Event, address: tuple[str, int] | tuple[()]):
        """`writable`: set while the client's write buffer has room (the connection keeps it)."""
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._writable = writable
        self.address = address
        self.written = 0
        self._waiting: set[asyncio.Task[None]] = set()

    # -- the thread side ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send `data`; return once the client's buffer has room again. BrokenPipeError
        once the client has gone (a handler's copy loop stops, as on a socket)."""
        # Not run_coroutine_threadsafe: its concurrent.futures waits on `threading`, which
        # eventlet may have made green, and a green wait never wakes in this OS thread.
        done = threading.Event()
        failed: list[BaseException] = []
        self._loop.call_soon_threadsafe(self._write, bytes(data), done, failed)
        done.wait()
        if failed:
            raise failed[0]

    def _write(self, data: bytes, done: threading.Event, failed: list[BaseException]) -> None:
        if self._transport.is_closing():
            failed.append(BrokenPipeError("the client has gone"))
            done.set()
            return
        self._transport.write(data)
        self.written += len(data)
        if self._writable.is_set():
            done.set()
        else:  # the connection sets it again on resume_writing, and when the client goes
            task = self._loop.create_task(self._when_writable(done))
            self._waiting.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._waiting.discard)

    async def _when_writable(self, done: threading.Event) -> None:
        await self._writable.wait()
        done.set()

    # -- the loop side ----------------------------------------------------------------------

    def fail(self, status: int, message: str) -> None:
        if not self._transport.is_closing():
            self._transport.write(error_response(status, message))
            self._transport.close()

    def finish(self, failed: bool) -> None:
        """The handler returned: a handler that failed before answering gets a 500."""
        if failed and not self.written:
            self.fail(500, "handler failed")
        elif not self._transport.is_closing():
            self._transport.close()
