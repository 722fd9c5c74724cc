"""Counting with prometheus_client, summed over --workers by its multiprocess mode.

Two sets of metrics, each made in the process that owns the events: the
serving ones (sessions, bytes, handshake failures, token lookups, target
connects) where clients are served, the supervising ones (the wrapped program,
worker restarts, descriptors) in the process that serves /metrics. In one
process both live in one registry. With --workers the parent makes a directory
and hands it to each worker as PROMETHEUS_MULTIPROC_DIR, so the worker's
prometheus_client writes its values to files there; the parent's registry reads
and sums them at each scrape (MultiProcessCollector): counters and histograms
over every worker that ever ran (a restarted worker's counts are kept), the
open-sessions gauge over live ones only (mark_process_dead at a worker's exit).
The files of a worker that exited are added into one file of ended workers'
values and removed, so a worker restarting again and again leaves no trail of
files for each scrape to read. The parent never sets the variable in its own
environment (one the user set is kept from it too, so the parent counts in
memory), and the wrapped program does not inherit ours.
"""
from __future__ import annotations

import enum
import os
import resource
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..errors import Refusal
from .meter import OUTCOMES, outcome

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_MULTIPROCESS_VARIABLES = (MULTIPROCESS_VARIABLE, "prometheus_multiproc_dir")  # and its old spelling
_LOOKUP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CONNECT_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMeter:
    """A Meter (meter.py) over prometheus_client. `serving`: this process serves
    clients; `supervising`: it owns the wrapped program, the workers and /metrics."""

    def __init__(self, registry: "CollectorRegistry | None", *, serving: bool, supervising: bool):
        from prometheus_client import Counter, Gauge, Histogram

        self.serving, self.supervising = serving, supervising
        if serving:
            self._open = Gauge("websockify_sessions_open", "WebSocket sessions open now.",
                               registry=registry, multiprocess_mode="livesum")
            self._sessions = Counter("websockify_sessions", "WebSocket sessions ended, by outcome (the class of "
                                     "their close code).", ["outcome"], registry=registry)
            self._bytes = Counter("websockify_relayed_bytes", "Bytes relayed (open sessions' every few seconds); "
                                  "up: client to target.", ["direction"], registry=registry)
            self._failures = Counter("websockify_handshake_failures", "Clients turned away before a session, "
                                     "by reason.", ["reason"], registry=registry)
            self._lookups = Histogram("websockify_token_lookup_seconds", "Time the token plugin took to answer.",
                                      registry=registry, buckets=_LOOKUP_BUCKETS_S)
            self._connects = Histogram("websockify_target_connect_seconds", "Time to connect to a target, by "
                                       "result.", ["result"], registry=registry, buckets=_CONNECT_BUCKETS_S)
            # Every label value from the start, so a rate() sees the first event.
            self._by_outcome = {name: self._sessions.labels(name) for name in OUTCOMES}
            self._up, self._down = self._bytes.labels("up"), self._bytes.labels("down")
            self._by_reason = {reason: self._failures.labels(reason.value) for reason in Refusal}
            self._connected, self._not_connected = self._connects.labels("ok"), self._connects.labels("failed")
        if supervising:
            self._program_restarts = Counter("websockify_wrapped_program_restarts", "Times the wrapped program "
                                             "was started again.", registry=registry)
            self._worker_restarts = Counter("websockify_worker_restarts", "Worker processes started in place of "
                                            "one that exited or stopped answering.", registry=registry)

    def session_started(self) -> None:
        if self.serving:
            self._open.inc()

    def session_ended(self, close_code: int | None) -> None:
        if self.serving:
            self._open.dec()
            self._by_outcome[outcome(close_code)].inc()

    def bytes_relayed(self, up: int, down: int) -> None:
        if self.serving:
            if up:
                self._up.inc(up)
            if down:
                self._down.inc(down)

    def handshake_failed(self, reason: Refusal) -> None:
        if self.serving:
            self._by_reason[reason].inc()

    def token_looked_up(self, seconds: float) -> None:
        if self.serving:
            self._lookups.observe(seconds)

    def target_connected(self, seconds: float, ok: bool) -> None:
        if self.serving:
            (self._connected if ok else self._not_connected).observe(seconds)

    def program_restarted(self) -> None:
        if self.supervising:
            self._program_restarts.inc()

    def worker_restarted(self) -> None:
        if self.supervising:
            self._worker_restarts.inc()


@dataclass(frozen=True)
class Exposition:
    """What /metrics serves: the registry to render, and the workers' directory to clean."""

    registry: "CollectorRegistry"
    multiprocess_dir: str | None
    # A scrape (on a thread) and a worker's files being folded in (on the loop) take turns,
    # or a scrape could count an ended worker twice, or not at all.
    _files: threading.Lock = field(default_factory=threading.Lock)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        with self._files:
            return generate_latest(self.registry)

    def process_ended(self, pid: int) -> None:
        """A worker exited: its open sessions no longer count; its counts join the ended ones'."""
        if self.multiprocess_dir is None:
            return
        from prometheus_client import multiprocess

        with self._files:
            multiprocess.mark_process_dead(pid, self.multiprocess_dir)  # type: ignore[no-untyped-call]
            for kind in ("counter", "histogram"):  # histogram files hold each bucket's own count: they add up
                ended = os.path.join(self.multiprocess_dir, f"{kind}_{pid}.db")
                if os.path.exists(ended):
                    _add_into(os.path.join(self.multiprocess_dir, f"{kind}_ended.db"), ended)


def _add_into(archive_path: str, ended_path: str) -> None:
    """Add one process's values into the archive file (made if need be), then remove its file."""
    from prometheus_client.mmap_dict import MmapedDict

    archive = MmapedDict(archive_path)  # type: ignore[no-untyped-call]
    try:
        values = MmapedDict.read_all_values_from_file(ended_path)  # type: ignore[no-untyped-call]
        for key, value, timestamp, _ in values:
            total = archive.read_value(key)[0] + value  # type: ignore[no-untyped-call]
            archive.write_value(key, total, timestamp)  # type: ignore[no-untyped-call]
    finally:
        archive.close()  # type: ignore[no-untyped-call]
    os.unlink(ended_path)


def exposition(processes: Callable[[], Iterable[tuple[str, int]]], multiprocess_dir: str | None,
               program_state: Callable[[], enum.Enum] | None = None) -> tuple[Exposition, PrometheusMeter]:
    """The registry /metrics renders, and this process's meter. `processes`: (name, pid)
    of every process whose descriptors count; `multiprocess_dir`: the workers' values;
    `program_state`: the wrapped program's, read at each scrape."""
    # prometheus_client chooses at import between memory and files by the environment:
    # memory here, whatever the user's environment says (a directory of theirs, or none).
    inherited = {name: os.environ.pop(name) for name in _MULTIPROCESS_VARIABLES if name in os.environ}
    try:
        from prometheus_client import CollectorRegistry, disable_created_metrics
    finally:
        os.environ.update(inherited)  # a wrapped program may want it
    from prometheus_client.multiprocess import MultiProcessCollector

    disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series: of no use here
    registry = CollectorRegistry(auto_describe=True)
    meter = PrometheusMeter(registry, serving=multiprocess_dir is None, supervising=True)
    if multiprocess_dir is not None:
        MultiProcessCollector(registry, multiprocess_dir)  # type: ignore[no-untyped-call]
    registry.register(_DescriptorCollector(processes))
    if program_state is not None:
        registry.register(_ProgramStateCollector(program_state))
    return Exposition(registry, multiprocess_dir), meter


class _ProgramStateCollector:
    """The wrapped program's state, one series per state, 1 for the current one."""

    def __init__(self, state: Callable[[], enum.Enum]):
        self._state = state

    def collect(self) -> Iterator["Metric"]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("websockify_wrapped_program_state", "1 for the wrapped program's state.",
                                   labels=["state"])
        current = self._state()
        for state in type(current):  # every state, 0 but the current one
            family.add_metric([state.value], 1 if state is current else 0)
        yield family


class _DescriptorCollector:
    """Open descriptors against the limit, per process: read when scraped."""

    def __init__(self, processes: Callable[[], Iterable[tuple[str, int]]]):
        self._processes = processes

    def collect(self) -> Iterator["Metric"]:
        from prometheus_client.core import GaugeMetricFamily

        open_fds = GaugeMetricFamily("websockify_open_fds", "Descriptors a process has open.", labels=["process"])
        max_fds = GaugeMetricFamily("websockify_max_fds", "A process's limit on open descriptors "
                                    "(RLIMIT_NOFILE).", labels=["process"])
        for name, pid in self._processes():
            try:
                count = len(os.listdir(f"/proc/{pid}/fd"))
                limit = _descriptor_limit(pid)
            except OSError:  # it exited since it was listed
                continue
            open_fds.add_metric([name], count)
            max_fds.add_metric([name], limit)
        yield open_fds
        yield max_fds


def _descriptor_limit(pid: int) -> float:
    if pid == os.getpid():
        return float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return float("inf") if soft == "unlimited" else float(soft)
    raise OSError(f"no descriptor limit for {pid}")


def worker_meter() -> PrometheusMeter | None:
    """A worker's meter, writing to the parent's directory; None when the parent gave none."""
    if MULTIPROCESS_VARIABLE not in os.environ:
        return None
    from prometheus_client import CollectorRegistry, disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call]
    return PrometheusMeter(CollectorRegistry(auto_describe=False), serving=True, supervising=False)
