"""A session's end, told once: the log line, its fields for --log-format json
(docs/logging.md) and the meter (metrics/)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..metrics import meter

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


class SessionReport:
    """Started with the session (the meter counts it open), ended once."""

    __slots__ = ("facts",)

    def __init__(self, facts: SessionFacts):
        self.facts = facts
        meter().session_started()

    def ended(self, *, target: str, bytes_up: int, bytes_down: int, duration_s: float, close_code: int | None,
              close_reason: str, failure: str | None) -> None:
        facts = self.facts
        meter().session_ended(close_code, bytes_up, bytes_down)
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
