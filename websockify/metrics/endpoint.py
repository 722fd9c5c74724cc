"""The --metrics listener: GET (or HEAD) /metrics, /healthz and /readyz, nothing else.

A port of its own, never the public one: scrapers and probes reach it, clients
do not. Each request is one short exchange, closed after the answer, all of it
within 10 s; a head over 8 KiB gets 431; past 32 connections at once, more are
closed unanswered. A PROXY header before the request is read and skipped.

- /healthz: 200 while the process runs its event loop (a liveness probe).
- /readyz: 200 once the public port listens and, when wrapping, while the
  program's port accepts; 503 before, while the program is starting, restarting
  or down, and from the start of a graceful stop (a balancer then sends new
  clients elsewhere while the sessions here close).
"""
from __future__ import annotations

import asyncio
import enum
import logging
import os
from typing import Callable

from ..addresses import TcpAddress, format_host_port
from ..errors import HttpError, StartupError
from ..protocol.http import RequestHead, RequestReader, error_response, response_head
from ..protocol.logsafe import printable
from ..protocol.proxy_header import ProxyHeaderError, parse
from ..protocol.sniff import Kind, sniff
from .prometheus import Exposition

log = logging.getLogger(__name__)

_MAX_HEAD_BYTES = 8 * 1024
_EXCHANGE_TIMEOUT_S = 10.0
_MAX_CONNECTIONS = 32
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class Readiness:
    """Whether new clients should be sent here. `program`: the wrapped program's state, if
    any, and the state in which it takes clients."""

    def __init__(self, program: tuple[Callable[[], enum.Enum], enum.Enum] | None = None):
        self._program = program
        self.listening = False
        self.stopping = False

    def why_not(self) -> str | None:
        """None when ready, else the reason in a few words."""
        if self.stopping:
            return "shutting down"
        if not self.listening:
            return "not listening yet"
        if self._program is not None:
            state, ready = self._program[0](), self._program[1]
            if state is not ready:
                return f"wrapped program {state.value}"
        return None


class MetricsEndpoint:
    def __init__(self, address: TcpAddress, exposition: Exposition, readiness: Readiness):
        self._address = address
        self._exposition = exposition
        self._readiness = readiness
        self._server: asyncio.Server | None = None
        self._open = 0  # connections being answered

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self._address.host, self._address.port,
                                                      reuse_address=True, limit=_MAX_HEAD_BYTES)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text repeats the address
            raise StartupError(f"--metrics {self._address}: cannot listen: {reason}") from None
        host, port = self._server.sockets[0].getsockname()[:2]
        log.info("metrics, /healthz and /readyz on http://%s/", format_host_port(host, port))

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= _MAX_CONNECTIONS:  # scrapers and probes are few: a crowd is no probe
            writer.close()
            return
        self._open += 1
        head: RequestHead | None = None
        try:
            async with asyncio.timeout(_EXCHANGE_TIMEOUT_S):  # reading the request and writing the answer
                head = await _read_head(reader)
                if head is not None:
                    writer.write(await self._answer(head))
                    await writer.drain()
        except HttpError as exc:
            writer.write(error_response(exc.status, str(exc), exc.headers,
                                        include_body=head is None or head.method != "HEAD"))
        except (TimeoutError, ConnectionError):
            pass
        except Exception as exc:  # reading the workers' files, say: an answer, and one line
            log.error("metrics listener: answering failed: %s", printable(repr(exc)))
            writer.write(error_response(500, "metrics unavailable"))
        finally:
            self._open -= 1
            writer.close()

    async def _answer(self, head: RequestHead) -> bytes:
        if head.method not in ("GET", "HEAD"):
            raise HttpError(405, f"method {head.method} not allowed", (("Allow", "GET, HEAD"),))
        path = head.target.split("?", 1)[0]
        if path == "/metrics":
            # Reading the workers' files takes a moment: not on the loop that serves clients.
            body, content_type, status = await asyncio.to_thread(self._exposition.render), _PROMETHEUS_TEXT, 200
        elif path == "/healthz":
            body, content_type, status = b"ok\n", "text/plain; charset=utf-8", 200
        elif path == "/readyz":
            why_not = self._readiness.why_not()
            body = b"ready\n" if why_not is None else f"not ready: {why_not}\n".encode()
            content_type, status = "text/plain; charset=utf-8", 200 if why_not is None else 503
        else:
            raise HttpError(404, "not found: /metrics, /healthz and /readyz are served here")
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close"),
                   ("Cache-Control", "no-store")]
        return response_head(status, headers) + (body if head.method == "GET" else b"")


async def _read_head(reader: asyncio.StreamReader) -> RequestHead | None:
    """The request head, after a PROXY header if there is one (a balancer that sends one to
    its clients' port may send it with its health checks too); None if the client left."""
    parser = RequestReader(_MAX_HEAD_BYTES, 50)
    start: bytes | None = b""  # until it is known whether a PROXY header comes first
    while True:
        data = await reader.read(4096)
        if not data:
            return None
        if start is not None:
            start += data
            data, start = _after_proxy_header(start)
            if start is not None:
                continue
        if data:
            head = parser.feed(data)
            if head is not None:
                return head


def _after_proxy_header(start: bytes) -> tuple[bytes, bytes | None]:
    """(what follows a PROXY header, None) once that is known; (b"", start) while not."""
    kind = sniff(start)
    if kind is Kind.NEED_MORE:
        return b"", start
    if kind is not Kind.PROXY_HEADER:
        return start, None
    try:
        header = parse(start)
    except ProxyHeaderError as exc:
        raise HttpError(400, f"bad PROXY header: {exc}") from None
    return (b"", start) if header is None else (start[header.length:], None)
