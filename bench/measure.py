"""One measurement: the load generator against one column, with the CPU of the
proxy, the load generator and the target server read exactly around the measured
window, and the proxy's memory read while every connection is still open."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import procs
from columns import Column


@dataclass
class Test:
    name: str              # key in the results: up, down, lat, c100, rate, idle...
    args: list[str]        # for `wsload run`
    setup_timeout: float   # until "ready"
    run_timeout: float     # from "ready" to "done"
    memory: bool = False   # sample the proxy's memory at "done"


@dataclass
class Sample:
    t: float
    proxy: float
    server: float
    client: float
    busy: int
    total: int


def _sample(col: Column, server_pid: int, client_pid: int) -> Sample:
    busy, total = procs.system_ticks()
    proxy = procs.cpu_seconds(procs.tree(col.proc.pid)) if col.proc else 0.0
    return Sample(time.monotonic(), proxy, procs.cpu_seconds([server_pid]),
                  procs.cpu_seconds([client_pid]), busy, total)


def _memory_guard() -> None:
    """Stops a test before a forking proxy exhausts the machine's memory."""
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1])
    floor = max(2 << 20, total // 10)
    available = procs.mem_available_kb()
    if available < floor:
        raise procs.BenchError(f"stopped: memory running low ({available >> 10} MB available)")


def settle(col: Column, limit: float = 20.0) -> None:
    """Waits (bounded) until a proxy is back to its idle shape: forked children
    gone, CPU quiet. Returns without complaint when the limit runs out."""
    if not col.proc:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and len(procs.tree(col.proc.pid)) > col.base_procs:
        time.sleep(0.1)
    for _ in range(20):
        before = procs.cpu_seconds(procs.tree(col.proc.pid))
        time.sleep(0.25)
        if procs.cpu_seconds(procs.tree(col.proc.pid)) - before < 0.025 or time.monotonic() > deadline:
            break


def run(wsload: Path, col: Column, server_pid: int, server_port: int, test: Test) -> dict[str, Any]:
    port = col.port if col.proc else server_port
    argv = [str(wsload), "run", "--connect", f"127.0.0.1:{port}", "--proto", col.proto, "--sync",
            *col.client_args, *test.args]
    errors = tempfile.TemporaryFile()

    def describe_exit() -> str:
        errors.seek(0)
        text = errors.read().decode(errors="replace").strip().splitlines()
        return f"the load generator exited ({text[-1] if text else 'no message'})"

    client = procs.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
    assert client.stdin is not None
    reader = procs.LineReader(client, describe_exit)
    try:
        reader.expect("ready", test.setup_timeout, _memory_guard)
        s0 = _sample(col, server_pid, client.pid)
        client.stdin.write(b"go\n")
        client.stdin.flush()
        reader.expect("done", test.run_timeout, _memory_guard)
        s1 = _sample(col, server_pid, client.pid)
        memory: Optional[dict[str, int]] = None
        if test.memory and col.proc:
            pids = procs.tree(col.proc.pid)
            rss, pss = procs.memory_kb(pids)
            memory = {"rss_kb": rss, "pss_kb": pss, "processes": len(pids)}
        client.stdin.write(b"end\n")
        client.stdin.flush()
        result: dict[str, Any] = json.loads(reader.expect("result ", 120))
    finally:
        procs.stop(client, grace=2.0)
        errors.close()
    if test.name in ("up", "down", "lat") and result.get("first_error"):
        # one connection: an error spoils the figure (the others count failures)
        result["error"] = result["first_error"]
    wall = max(s1.t - s0.t, 1e-6)
    cores = os.cpu_count() or 1
    cpu = {"proxy": (s1.proxy - s0.proxy) / wall * 100,
           "server": (s1.server - s0.server) / wall * 100,
           # the load generator's own count is exact (getrusage), /proc's is in ticks
           "client": result.get("cpu_secs", s1.client - s0.client) / wall * 100,
           "system": (s1.busy - s0.busy) / max(1, s1.total - s0.total) * cores * 100}
    cpu["other"] = max(0.0, cpu["system"] - cpu["proxy"] - cpu["server"] - cpu["client"])
    if wall >= 0.01:
        result["cpu_percent"] = {k: round(v, 1) for k, v in cpu.items()}
    result["wall_secs"] = round(wall, 4)
    if memory:
        result["memory"] = memory
    return result


def better(a: Optional[dict[str, Any]], b: dict[str, Any], key: str) -> dict[str, Any]:
    """The better of two runs of a bulk test (the one without errors first)."""
    if a is None or a.get("error"):
        return b
    if b.get("error"):
        return a
    return b if b.get(key, 0) > a.get(key, 0) else a
