"""A session's end, told once: the log line, its fields for --log-format json
(docs/logging.md) and the meter (metrics/).

With a meter that counts (--metrics), the bytes of open sessions are counted
as they go too, every FLUSH_EVERY_S from each session's byte counts, so a
session of hours shows in the traffic's rate while it lasts, at no cost per
message.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from ..metrics import NULL_METER, meter

log = logging.getLogger("websockify.proxy.pump")  # the session line's logger, as before


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the connection knew when the relay started."""

    peer: str  # as every line of the session names it: "HOST:PORT", or "CLIENT via PROXY:PORT"
    client: str  # the real client: "HOST:PORT", or "HOST" when a forwarded header named it
    proxy: str | None = None  # the load balancer or reverse proxy that named the client
    token: str | None = None  # shortened (token_request.redact)
    subprotocol: str | None = None
    tls_version: str | None = None  # the client's, e.g. "TLSv1.3"


FLUSH_EVERY_S = 5.0


class Progress(Protocol):
    """Where a session's byte counts are read (the relay)."""

    bytes_up: int
    bytes_down: int


class SessionReport:
    """Started with the session (the meter counts it open), ended once."""

    __slots__ = ("_counted_down", "_counted_up", "_progress", "facts")

    def __init__(self, facts: SessionFacts, progress: Progress | None = None):
        self.facts = facts
        self._progress = progress if meter() is not NULL_METER else None
        self._counted_up = self._counted_down = 0
        meter().session_started()
        if self._progress is not None:
            _open_reports().add(self)

    def count_bytes(self) -> None:
        """Tell the meter what the session relayed since the last time."""
        if self._progress is not None:
            up, down = self._progress.bytes_up, self._progress.bytes_down
            meter().bytes_relayed(up - self._counted_up, down - self._counted_down)
            self._counted_up, self._counted_down = up, down

    def ended(self, *, target: str, bytes_up: int, bytes_down: int, duration_s: float, close_code: int | None,
              close_reason: str, failure: str | None) -> None:
        facts = self.facts
        if self._progress is not None:
            _open_reports().discard(self)
            self._progress = None  # the relay holds this report: no cycle left behind
        meter().bytes_relayed(bytes_up - self._counted_up, bytes_down - self._counted_down)
        meter().session_ended(close_code)
        fields = {
            "client": facts.client, "proxy": facts.proxy, "target": target, "bytes_up": bytes_up,
            "bytes_down": bytes_down, "duration_s": round(duration_s, 3), "close_code": close_code,
            "close_reason": close_reason or None, "token": facts.token, "subprotocol": facts.subprotocol,
            "tls_version": facts.tls_version, "failure": failure,
        }
        log.info(
            "%s target=%s up=%d down=%d duration=%.3fs close=%s%s%s",
            facts.peer, target, bytes_up, bytes_down, duration_s, close_code if close_code is not None else "-",
            f" ({close_reason})" if close_reason else "", f" error={failure}" if failure else "",
            extra={"event": "session_end", "fields": fields},
        )


# The open sessions to count bytes of, per event loop (one in a process; tests run others).
_reports: dict[asyncio.AbstractEventLoop, set[SessionReport]] = {}


def _open_reports() -> set[SessionReport]:
    loop = asyncio.get_running_loop()
    reports = _reports.get(loop)
    if reports is None:
        reports = _reports[loop] = set()
        loop.call_later(FLUSH_EVERY_S, _count_open, loop, reports)
    return reports


def _count_open(loop: asyncio.AbstractEventLoop, reports: set[SessionReport]) -> None:
    for report in list(reports):
        report.count_bytes()
    if not loop.is_closed():
        loop.call_later(FLUSH_EVERY_S, _count_open, loop, reports)
