"""The events a meter counts (a typing.Protocol), and the meter that counts nothing."""
from __future__ import annotations

from typing import Protocol

from ..errors import CloseCode, Refusal

# A session's outcome by its close code, so the label has few values whatever a
# client sends: `normal` 1000 and 1005 (a close frame without a code, as noVNC's
# disconnect sends), `going_away` 1001 (the client left, or we stopped),
# `client_error` (1002, 1003, 1007, 1008, 1009: the client broke a rule),
# `server_error` (1011 target unreachable or failed, 1013 busy, 1014), `abnormal`
# (1006, no close frame: a connection lost) and `other` for the rest (3000-4999).
_OUTCOMES = {CloseCode.NORMAL: "normal", 1005: "normal", CloseCode.GOING_AWAY: "going_away", 1002: "client_error",
             1003: "client_error", 1007: "client_error", 1008: "client_error", 1009: "client_error",
             1011: "server_error", 1013: "server_error", 1014: "server_error", 1006: "abnormal"}
OUTCOMES = ("normal", "going_away", "client_error", "server_error", "abnormal", "other")


def outcome(close_code: int | None) -> str:
    """The `outcome` label of a session that ended with `close_code` (None: no close frame)."""
    return "abnormal" if close_code is None else _OUTCOMES.get(close_code, "other")


class Meter(Protocol):
    """What the process tells its metrics. Every method is cheap and never raises."""

    def session_started(self) -> None: ...

    def session_ended(self, close_code: int | None) -> None: ...

    def bytes_relayed(self, up: int, down: int) -> None:
        """Bytes relayed since the last call for the session: `up` client to target."""

    def handshake_failed(self, reason: Refusal) -> None: ...

    def token_looked_up(self, seconds: float) -> None: ...

    def target_connected(self, seconds: float, ok: bool) -> None: ...

    def program_restarted(self) -> None: ...

    def worker_restarted(self) -> None: ...


class _NullMeter:
    """Counts nothing: without --metrics."""

    def session_started(self) -> None:
        pass

    def session_ended(self, close_code: int | None) -> None:
        pass

    def bytes_relayed(self, up: int, down: int) -> None:
        pass

    def handshake_failed(self, reason: Refusal) -> None:
        pass

    def token_looked_up(self, seconds: float) -> None:
        pass

    def target_connected(self, seconds: float, ok: bool) -> None:
        pass

    def program_restarted(self) -> None:
        pass

    def worker_restarted(self) -> None:
        pass


NULL_METER: Meter = _NullMeter()
