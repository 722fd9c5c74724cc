"""What to do when the wrapped service starts, runs and ends: a pure state machine.

No processes and no clock here: the caller passes the time in, so every path
(respawn backoff, its reset after a stable run, exit status) is testable with
plain numbers.

States: STARTING (spawned, not listening yet) → RUNNING (ready). When the
tree is gone: BACKOFF until the next start in respawn mode, IDLE in ignore
mode, DONE in exit mode (DONE is also the state before the first start).
STOPPING once websockify itself is asked to stop.

What clients see of this is a ProgramState: READY, STARTING (wait for it) or
DOWN (refuse them now); the worker processes are told the same three.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..config import WRAP_MODES, WrapMode


class State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    IDLE = "idle"
    STOPPING = "stopping"
    DONE = "done"


class ProgramState(enum.Enum):
    """The wrapped program as its clients see it."""
    READY = "ready"  # listening: connect to it
    STARTING = "starting"  # starting or about to respawn: wait for it
    DOWN = "down"  # not running and not coming back: refuse


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    stable_after_s: float = 10.0  # a run this long resets the delay

    def delay(self, quick_failures: int) -> float:
        return min(self.initial_s * self.factor ** max(quick_failures - 1, 0), self.max_s)


@dataclass(frozen=True)
class Exit:
    """End websockify with this code."""
    code: int


@dataclass(frozen=True)
class Respawn:
    """Start the command again after this many seconds."""
    delay_s: float
    attempt: int


@dataclass(frozen=True)
class KeepProxying:
    """Ignore mode: stay up with nothing behind the proxy."""


Decision = Exit | Respawn | KeepProxying


class Supervisor:
    def __init__(self, mode: WrapMode, backoff: Backoff = Backoff()):
        if mode not in WRAP_MODES:  # for callers that mypy does not check
            raise ValueError(f"unknown wrap mode {mode!r}")
        self.mode: WrapMode = mode
        self.backoff = backoff
        self.state = State.DONE
        self.started_at: float | None = None
        self.quick_failures = 0
        self.starts = 0
        self.stop_signal: int | None = None

    def spawned(self, now: float) -> None:
        self.state = State.STARTING
        self.started_at = now
        self.starts += 1

    def ready(self) -> None:
        if self.state is State.STARTING:
            self.state = State.RUNNING

    def tree_exited(self, now: float, status: int) -> Decision:
        """The last process of the service ended with `status` (shell convention)."""
        if self.state is State.STOPPING:
            return Exit(self.stop_exit_code(status))
        ran_s = now - (self.started_at if self.started_at is not None else now)
        if self.mode == "exit":
            self.state = State.DONE
            return Exit(status)
        if self.mode == "ignore":
            self.state = State.IDLE
            return KeepProxying()
        self.quick_failures = 0 if ran_s >= self.backoff.stable_after_s else self.quick_failures + 1
        self.state = State.BACKOFF
        return Respawn(self.backoff.delay(self.quick_failures), self.starts + 1)

    def stop(self, signum: int) -> None:
        """websockify was asked to stop: no more respawns."""
        self.stop_signal = signum
        self.state = State.STOPPING

    def stop_exit_code(self, status: int | None) -> int:
        """Exit mode reports the program's status; the others report our signal."""
        if self.mode == "exit" and status is not None:
            return status
        return 128 + (self.stop_signal or 0)

    @property
    def accepting_clients(self) -> bool:
        """Whether a client should wait for the service (rather than be refused now)."""
        return self.state in (State.STARTING, State.RUNNING, State.BACKOFF)

    @property
    def program_state(self) -> ProgramState:
        if self.state is State.RUNNING:
            return ProgramState.READY
        return ProgramState.STARTING if self.accepting_clients else ProgramState.DOWN
