"""--metrics in the process that serves it (the only one, or the parent of
workers): the meter installed, the workers' value directory, the listener."""
from __future__ import annotations

import enum
import os
import shutil
import tempfile
from typing import Callable, Iterable

from ..addresses import TcpAddress
from . import install
from .endpoint import MetricsEndpoint, Readiness
from .prometheus import MULTIPROCESS_VARIABLE, exposition

Processes = Callable[[], Iterable[tuple[str, int]]]


class MetricsService:
    def __init__(self, address: TcpAddress, program: tuple[Callable[[], enum.Enum], enum.Enum] | None,
                 workers: bool):
        """`program`: the wrapped program's state, and the one in which it takes clients;
        `workers`: clients are served by worker processes, whose values are summed here."""
        # In the runtime directory when there is one (as the wrapped program's): no cleaner
        # of old files in /tmp can take the counts of workers that ended long ago.
        self.multiprocess_dir = (tempfile.mkdtemp(prefix="websockify-metrics-", dir=os.environ.get("XDG_RUNTIME_DIR"))
                                 if workers else None)
        self._workers: Processes = lambda: ()
        try:
            self.exposition, meter = exposition(self._processes, self.multiprocess_dir,
                                                program[0] if program is not None else None)
        except BaseException:
            self._remove_directory()
            raise
        install(meter)
        self.readiness = Readiness(program)
        self._endpoint = MetricsEndpoint(address, self.exposition, self.readiness)

    def _processes(self) -> list[tuple[str, int]]:
        return [("main", os.getpid()), *self._workers()]

    def watch_workers(self, workers: Processes) -> None:
        """Count the descriptors of these (name, pid) too."""
        self._workers = workers

    def worker_environment(self) -> dict[str, str]:
        """What a worker's environment needs so that its values reach /metrics here."""
        return {MULTIPROCESS_VARIABLE: self.multiprocess_dir} if self.multiprocess_dir is not None else {}

    async def start(self) -> None:
        await self._endpoint.start()

    def close(self) -> None:
        self._endpoint.close()
        self._remove_directory()

    def _remove_directory(self) -> None:
        if self.multiprocess_dir is not None:
            shutil.rmtree(self.multiprocess_dir, ignore_errors=True)
