"""The soak test's record of a run, its pass/fail checks and the closing summary."""
from __future__ import annotations

from dataclasses import dataclass, field

from soak_load import Stats

MB = 1024 * 1024
RSS_GROWTH_LIMIT = 0.10
RSS_GOAL_MB = 150
WARNINGS_SHOWN = 10  # websockify's log is kept when it has more

HEADER = " time  phase   open   RSS MB    fds  echo/s  open/s  errors  cpu ws/client"


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the ramp began
    phase: str
    open: int
    rss: int
    fds: int
    echo_rate: float
    open_rate: float
    errors: int
    ws_cpu: float
    client_cpu: float

    def line(self) -> str:
        return (f"{self.t:4.0f}s  {self.phase:<6} {self.open:5d}  {self.rss / MB:7.1f}  {self.fds:5d}"
                f"  {self.echo_rate:6.0f}  {self.open_rate:6.0f}  {self.errors:6d}"
                f"  {self.ws_cpu:4.0f}%/{self.client_cpu:.0f}%")


@dataclass
class Run:
    connections: int
    duration: float
    warmup: float
    echoers: int = 0
    churn_rate: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    churn_start: float | None = None  # sample time when the churn began
    churn_end: float | None = None
    ramp_seconds: float | None = None
    rss_at_n: int | None = None
    fds_start: int | None = None
    fds_at_n: int | None = None
    fds_end: int | None = None
    settle_seconds: float | None = None
    settle_limit: float = 0.0
    fd_overshoots: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures found outside the checks below
    stats: Stats = field(default_factory=Stats)
    log_warnings: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    fitted_from: int | None = None  # the default connection count, when the open-file limit fits fewer

    def warnings_hidden(self) -> int:
        """websockify's warnings the summary leaves out."""
        return max(0, len(self.log_warnings) - WARNINGS_SHOWN)

    def after_warmup(self) -> list[Sample]:
        if self.churn_start is None:
            return []
        start = self.churn_start + self.warmup
        return [s for s in self.samples if s.phase == "churn" and s.t >= start]

    def failures(self) -> list[str]:
        found = list(self.problems)
        stats = self.stats
        if stats.error_count:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(stats.errors.items()))
            found.append(f"{stats.error_count} session errors ({kinds})")
        settled = self.after_warmup()
        if len(settled) >= 2 and settled[0].rss > 0:
            base = settled[0].rss
            peak = max(s.rss for s in settled)
            if peak > base * (1 + RSS_GROWTH_LIMIT):
                found.append(f"RSS grew {100 * (peak / base - 1):.1f}% after warm-up "
                             f"({base / MB:.1f} -> {peak / MB:.1f} MB; limit {100 * RSS_GROWTH_LIMIT:.0f}%)")
        if self.fd_overshoots:
            found.append(f"websockify held more descriptors than its connections explain in "
                         f"{len(self.fd_overshoots)} samples, first: {self.fd_overshoots[0]}")
        if self.fds_start is not None and self.fds_end is not None and self.fds_end > self.fds_start:
            found.append(f"descriptors leaked: {self.fds_end} open {self.settle_limit:g}s after every "
                         f"connection closed, {self.fds_start} at the start")
        if self.log_errors:
            found.append(f"websockify logged {_count(len(self.log_errors), 'error')}, first: {self.log_errors[0]}")
        return found

    def summary(self) -> str:
        stats = self.stats
        failures = self.failures()
        verdict = "INTERRUPTED" if self.interrupted else ("FAIL" if failures else "PASS")
        lines = ["", "== websockify soak test " + "=" * 48]

        def row(name: str, text: str) -> None:
            lines.append(f"{name:<19}{text}")

        ramp = f" (all open {self.ramp_seconds:.1f}s after the start)" if self.ramp_seconds is not None else ""
        fitted = (f"; the most the open-file limit fits, not the default {self.fitted_from}"
                  if self.fitted_from is not None else "")
        row("connections", f"{self.connections} through one websockify process{ramp}{fitted}")
        churned = 0.0
        if self.churn_start is not None and self.samples:
            churned = (self.churn_end if self.churn_end is not None else self.samples[-1].t) - self.churn_start
        row("duration", f"{self.duration:g}s of churn ({churned:.0f}s done): {self.echoers} connections echoing, "
                        f"~{self.churn_rate:g} reconnects/s")
        goal = "" if self.rss_at_n is None else (" (goal: under %d MB)" % RSS_GOAL_MB)
        row(f"RSS at {self.connections}", _mb(self.rss_at_n) + goal)
        settled = self.after_warmup()
        if len(settled) >= 2 and settled[0].rss > 0:
            base, low, high = settled[0].rss, min(s.rss for s in settled), max(s.rss for s in settled)
            row("RSS after warm-up", f"min {low / MB:.1f} MB, max {high / MB:.1f} MB: {100 * (high / base - 1):+.1f}% "
                                     f"over {base / MB:.1f} MB as the warm-up ended (limit +{100 * RSS_GROWTH_LIMIT:.0f}%)")
        else:
            row("RSS after warm-up", "not measured: the churn ended before two samples after the warm-up")
        row("warm-up", f"the first {self.warmup:g}s of the churn")
        settle = f" ({self.settle_seconds:.1f}s after the last close)" if self.settle_seconds is not None else ""
        row("fds", f"start {_n(self.fds_start)}, at {self.connections} open {_n(self.fds_at_n)}, "
                   f"end {_n(self.fds_end)}{settle}")
        lost, corrupt = stats.errors.get("lost", 0), stats.errors.get("corrupt", 0)
        row("echoes", f"{stats.echoes} messages, {stats.echo_bytes / MB:.1f} MB each way; "
                      f"{lost} lost, {corrupt} corrupt")
        closes = stats.closes
        row("reconnects", f"{sum(closes.values())} ({closes['clean']} clean close, {closes['fin']} FIN without "
                          f"close, {closes['rst']} reset)")
        row("errors", str(stats.error_count) + "".join(f", {n} {k}" for k, n in sorted(stats.errors.items())))
        row("websockify log", f"{_count(len(self.log_warnings), 'warning')}, {_count(len(self.log_errors), 'error')}")
        lines.extend(f"  {warning}" for warning in self.log_warnings[:WARNINGS_SHOWN])
        if self.warnings_hidden():
            lines.append(f"  ... and {self.warnings_hidden()} more in websockify's log")
        row("result", verdict)
        for failure in failures:
            lines.append(f"  - {failure}")
        if stats.messages:
            lines.append("first session errors of each kind:")
            for kind, messages in sorted(stats.messages.items()):
                lines.extend(f"  {kind}: {message}" for message in messages)
        return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:.1f} MB"


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)
