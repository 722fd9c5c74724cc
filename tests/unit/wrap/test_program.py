"""The wrapped program: readiness, the tree's end, respawn and stop, driven by hand.

No process is started: process.py's functions are replaced by a fake tree, the
reaper runs on a loop whose readers the test fires, the readiness socket is a
fake and the supervisor's clock is injected.
"""
import asyncio
import signal
from pathlib import Path
from typing import Callable, Optional

import pytest

from websockify.addresses import TcpAddress
from websockify.config import Config, WrapMode
from websockify.wrap import program as program_module
from websockify.wrap.program import WrappedProgram
from websockify.wrap.supervisor import ProgramState

from .fakes import FakeLoop, Kernel

MAIN = 100
WATCHDOG = 99


class FakeProcess:
    def __init__(self, pid: int, parent: int | None):
        self.pid = pid
        self.parent = parent  # None: websockify


class FakeReadiness:
    last: Optional["FakeReadiness"] = None

    def __init__(self, path: str, on_report: Callable[[TcpAddress], None]):
        self.path = path
        self.report = on_report
        self.closed = False
        FakeReadiness.last = self

    def close(self) -> None:
        self.closed = True


class World:
    """The processes websockify would see, and what it did to them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.kernel = Kernel()
        self.reaper_loop = FakeLoop()
        self.reaper = self.kernel.reaper(self.reaper_loop)
        self.alive: dict[int, FakeProcess] = {}
        self.spawned: list[tuple[str, ...]] = []
        self.signals: list[tuple[list[int], int]] = []
        self.next_pid = MAIN
        process = program_module.process
        monkeypatch.setattr(process, "become_subreaper", lambda: None)
        monkeypatch.setattr(process, "start_watchdog", self._start_watchdog)
        monkeypatch.setattr(process, "stop_watchdog", lambda pid: None)
        monkeypatch.setattr(process, "spawn", self._spawn)
        monkeypatch.setattr(process, "tree", self._tree)
        monkeypatch.setattr(process, "own_children", lambda processes: [p for p in processes if p.parent is None])
        monkeypatch.setattr(process, "send", lambda targets, signum: self.signals.append(
            ([p.pid for p in targets], signum)))
        monkeypatch.setattr(program_module, "ReadinessSocket", FakeReadiness)

    def _start_watchdog(self, marker: str) -> int:
        self.kernel.children[WATCHDOG] = None
        return WATCHDOG

    def _spawn(self, argv, env, cwd=None) -> int:
        pid = self.next_pid
        self.next_pid += 1
        self.spawned.append(tuple(argv))
        self.started(pid)
        return pid

    def _tree(self, exclude=()) -> list[FakeProcess]:
        return [p for pid, p in self.alive.items() if pid not in exclude]

    async def signalled(self, signum: int) -> None:
        """Until websockify has sent `signum` (each turn of the loop, no clock)."""
        while not any(sent == signum for _, sent in self.signals):
            await asyncio.sleep(0)

    def started(self, pid: int, parent: int | None = None) -> None:
        """A process appears in our tree, forked by `parent` (None: by us)."""
        self.alive[pid] = FakeProcess(pid, parent)
        if parent is None:
            self.kernel.children[pid] = None
        else:
            self.kernel.others[pid] = True

    def exits(self, pid: int, code: int) -> None:
        """It exits: its children are re-parented to us (a subreaper), its pidfd fires."""
        gone = self.alive.pop(pid)
        for orphan in self.alive.values():
            if orphan.parent == pid:
                orphan.parent = None
                del self.kernel.others[orphan.pid]
                self.kernel.children[orphan.pid] = None
        if gone.parent is None:
            self.kernel.children[pid] = code
        else:
            self.kernel.others[pid] = False
        if 1000 + pid in self.reaper_loop.readers:
            self.reaper_loop.fire(1000 + pid)


@pytest.fixture
def world(monkeypatch, tmp_path) -> World:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return World(monkeypatch)


def config(mode: WrapMode = "exit") -> Config:
    return Config(listen=TcpAddress("", 5900), wrap_command=("server", "--flag"), wrap_mode=mode,
                  grace_period_s=30.0)


def run(test: Callable[[], object]) -> None:
    async def main() -> None:
        await asyncio.wait_for(test(), 10)  # type: ignore[arg-type]
    asyncio.run(main())


def test_ready_once_rebind_reports_the_moved_port(world):
    async def test() -> None:
        program = WrappedProgram(config(), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        changes: list[tuple[ProgramState, TcpAddress | None]] = []
        program.add_state_listener(lambda: changes.append(program.target_state()))
        program.start()
        assert world.spawned == [("server", "--flag")]
        assert world.reaper.is_watched(MAIN) and world.reaper.is_watched(WATCHDOG)
        assert program.target_state() == (ProgramState.STARTING, None)
        assert FakeReadiness.last is not None
        FakeReadiness.last.report(TcpAddress("127.0.0.1", 40000))
        assert program.target_state() == (ProgramState.READY, TcpAddress("127.0.0.1", 40000))
        assert changes == [(ProgramState.READY, TcpAddress("127.0.0.1", 40000))]
        await program.wait_ready()
        program.detach()
        program.close()
    run(test)


def test_exit_mode_ends_with_the_programs_status(world):
    async def test() -> None:
        program = WrappedProgram(config("exit"), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        program.start()
        world.exits(MAIN, 3)
        assert program.exited.result() == 3
        assert program.target_state() == (ProgramState.DOWN, None)
        program.detach()
        program.close()
    run(test)


def test_an_orphan_left_by_a_daemonizing_program_keeps_it_running(world):
    async def test() -> None:
        program = WrappedProgram(config("exit"), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        program.start()
        world.started(200, parent=MAIN)  # the program forks its server, then exits
        assert not world.reaper.is_watched(200)  # the program's to collect, while it runs
        world.exits(MAIN, 0)
        assert not program.exited.done()
        assert world.reaper.is_watched(200)  # ours now
        world.exits(200, 5)
        assert program.exited.result() == 5
        program.detach()
        program.close()
    run(test)


def test_a_grandchild_re_parented_while_the_program_runs_is_collected_by_the_orphan_check(world):
    async def test() -> None:
        program = WrappedProgram(config("exit"), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        program.start()
        world.started(300, parent=MAIN)
        world.started(301, parent=300)
        world.exits(300, 0)  # the program collects it (no event for us); 301 is ours now, unwatched
        world.exits(301, 4)  # and exits: a zombie of ours nobody watches
        assert world.kernel.children[301] == 4
        world.reaper_loop.run_timers()  # the reaper's check for unwatched exits
        assert 301 not in world.kernel.children and not program.exited.done()
        world.exits(MAIN, 6)
        assert program.exited.result() == 6
        program.detach()
        program.close()
    run(test)


def test_respawn_mode_keeps_clients_waiting_through_the_backoff(world):
    async def test() -> None:
        now = [0.0]
        program = WrappedProgram(config("respawn"), Path("/rebind.so"), world.reaper, clock=lambda: now[0])
        program.start()
        now[0] = 1.0  # a quick failure: the first delay of the backoff
        world.exits(MAIN, 1)
        assert program.target_state() == (ProgramState.STARTING, None)
        assert not program.exited.done() and len(world.spawned) == 1
        assert program.status_text().startswith("wrapped program backoff")
        program.detach()
        program.close()
    run(test)


def test_the_workers_and_the_watchdog_are_not_the_programs_tree(world):
    async def test() -> None:
        program = WrappedProgram(config("exit"), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        world.started(500)  # a worker process, watched by its group
        world.reaper.watch(500, lambda pid, code: None)
        program.start()
        world.started(WATCHDOG)
        world.exits(MAIN, 7)
        assert program.exited.result() == 7
        program.detach()
        program.close()
    run(test)


def test_stop_forwards_the_signal_and_returns_once_the_tree_is_gone(world):
    async def test() -> None:
        program = WrappedProgram(config("ignore"), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        program.start()
        world.started(400)
        force = asyncio.Event()
        stopping = asyncio.ensure_future(program.stop(signal.SIGTERM, force))
        await world.signalled(signal.SIGTERM)
        assert world.signals == [([MAIN, 400], signal.SIGTERM)]
        world.exits(MAIN, 143)
        assert not stopping.done()
        world.exits(400, 0)
        assert await stopping == 128 + signal.SIGTERM  # ignore mode reports our signal
        program.detach()
        program.close()
    run(test)


def test_a_second_signal_kills_what_is_left(world):
    async def test() -> None:
        program = WrappedProgram(config("exit"), Path("/rebind.so"), world.reaper, clock=lambda: 0.0)
        program.start()
        force = asyncio.Event()
        stopping = asyncio.ensure_future(program.stop(signal.SIGTERM, force))
        await world.signalled(signal.SIGTERM)
        force.set()
        await world.signalled(signal.SIGKILL)
        assert world.signals[-1] == ([MAIN], signal.SIGKILL)
        world.exits(MAIN, 137)
        assert await stopping == 137  # exit mode reports the program's status
        program.detach()
        program.close()
    run(test)
