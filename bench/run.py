#!/usr/bin/env python3
"""Side-by-side loopback benchmark: raw TCP, the load generator's own WebSocket
ceiling, upstream websockify, websocat and this checkout, driven by the same C
load generator (bench/wsload) in the same run. Prints a Markdown table and
writes every number to bench/results/run-STAMP.json.

  python3 bench/run.py                      # the default columns
  python3 bench/run.py --quick              # shorter runs (about a minute)
  python3 bench/run.py --columns raw,ours --column 'mine=/path/to/proxy {listen} {target}'
  python3 bench/run.py --idle 10000         # also: memory with 10000 idle connections
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import columns  # noqa: E402
import measure  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
from columns import BENCH, ROOT, Column  # noqa: E402

WSLOAD = BENCH / "build" / "wsload"
TESTS = ("up", "down", "lat", "conns", "rate")


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs: 1 bulk rep capped at 2 s, 1.5 s windows")
    ap.add_argument("--columns", help="comma list of columns to run (default: raw, ws-direct, upstream, "
                    "websocat, ours, pp-metrics, ours-w2 when websockify has --workers, py-relay; "
                    "also py-relay-w2)")
    ap.add_argument("--column", action="append", default=[], metavar="NAME=CMD",
                    help="an extra proxy column: a command with {listen} and {target} (repeatable)")
    ap.add_argument("--proxy-v2", default="", metavar="NAMES",
                    help="comma list of further columns (e.g. --column ones) to which the load generator "
                    "sends a PROXY protocol v2 header first (pp-metrics always gets one)")
    ap.add_argument("--tests", default=",".join(TESTS), help=f"which tests (default {','.join(TESTS)}; "
                    "the idle step runs when --idle is given)")
    ap.add_argument("--bytes", type=int, help="bytes per bulk transfer (default 256 MiB)")
    ap.add_argument("--cap", type=float, help="time cap of one bulk transfer, s (default 6)")
    ap.add_argument("--reps", type=int, help="bulk runs per column, the best is kept (default 2)")
    ap.add_argument("--secs", type=float, help="window of the connection tests, s (default 3)")
    ap.add_argument("--conns", default="100,1000", help="concurrent connection counts (default 100,1000)")
    ap.add_argument("--lat-count", type=int, default=2000, help="sequential echoes measured (default 2000)")
    ap.add_argument("--slots", type=int, default=8, help="parallel slots of the new-connection test")
    ap.add_argument("--idle", type=int, default=0, metavar="N",
                    help="also measure the proxies' memory with N idle connections open")
    ap.add_argument("--idle-columns", help="columns for --idle (default: every proxy that does not "
                    "fork per connection)")
    ap.add_argument("--subprotocol", default="binary", help="Sec-WebSocket-Protocol offered ('' for none)")
    ap.add_argument("--path", default="/", help="request path of every WebSocket client, e.g. /?token=bench "
                                                "(see bench/token_proxy.py)")
    ap.add_argument("--out", default=str(BENCH / "results"), help="where the JSON and the table go")
    args = ap.parse_args(argv)
    quick = args.quick
    args.bytes = args.bytes or 256 << 20  # less would leave raw a window of a few ms
    args.cap = args.cap or (2.0 if quick else 6.0)
    args.reps = args.reps or (1 if quick else 2)
    args.secs = args.secs or (1.5 if quick else 3.0)
    try:
        args.conn_counts = [int(x) for x in args.conns.split(",") if x.strip()]
    except ValueError:
        ap.error("--conns wants numbers, e.g. 100,1000")
    if any(n < 1 for n in args.conn_counts) or args.idle < 0 or args.reps < 1:
        ap.error("counts must be positive")
    args.test_names = [t.strip() for t in args.tests.split(",") if t.strip()]
    unknown = [t for t in args.test_names if t not in TESTS]
    if unknown:
        ap.error(f"unknown test {', '.join(unknown)}; known: {', '.join(TESTS)}")
    return args


def choose_columns(args: argparse.Namespace) -> list[Column]:
    known = columns.known()
    extra = [columns.custom(spec) for spec in args.column]
    for col in extra:
        if col.name in known:
            raise procs.BenchError(f"--column {col.name}: that name is taken")
        known[col.name] = col
    if args.columns:
        names = [n.strip() for n in args.columns.split(",") if n.strip()]
    else:
        names = columns.default_names() + [c.name for c in extra]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise procs.BenchError(f"unknown column {', '.join(unknown)}; known: {', '.join(known)}")
    for name in [n.strip() for n in args.proxy_v2.split(",") if n.strip()]:
        if name not in known:
            raise procs.BenchError(f"--proxy-v2 {name}: unknown column; known: {', '.join(known)}")
        if not known[name].is_proxy:
            raise procs.BenchError(f"--proxy-v2 {name}: not a proxy (the target server reads no PROXY header)")
        if "--proxy-v2" not in known[name].client_args:
            known[name].client_args += ("--proxy-v2",)
    return [known[n] for n in dict.fromkeys(names)]


def build_wsload() -> None:
    done = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(ROOT), "bench/build/wsload"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not WSLOAD.exists():
        raise procs.BenchError("could not build bench/build/wsload: " + (done.stderr.strip() or "make failed"))


def plan(args: argparse.Namespace) -> list[measure.Test]:
    bulk = ["--bytes", str(args.bytes), "--cap", str(args.cap), "--subprotocol", args.subprotocol,
            "--path", args.path]
    common = ["--subprotocol", args.subprotocol, "--path", args.path]
    tests, want = [], set(args.test_names)
    for _ in range(args.reps):
        for name in ("up", "down"):
            if name in want:
                tests.append(measure.Test(name, ["--test", name, *bulk], 60, args.cap + 40))
    if "lat" in want:
        tests.append(measure.Test("lat", ["--test", "lat", "--count", str(args.lat_count), *common], 60, 120))
    for n in args.conn_counts if "conns" in want else []:
        tests.append(measure.Test(f"c{n}", ["--test", "conns", "--conns", str(n), "--secs", str(args.secs),
                                            *common], 100, args.secs + 40, memory=True))
    if "rate" in want:
        tests.append(measure.Test("rate", ["--test", "rate", "--secs", str(args.secs), "--slots",
                                           str(args.slots), *common], 30, args.secs + 40))
    return tests


def labels(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The tests that have CPU figures (the idle step has no measured window)."""
    out = [("up", "bulk upload"), ("down", "bulk download"), ("lat", "latency")]
    out += [(f"c{n}", f"{n} conns") for n in args.conn_counts]
    out.append(("rate", "new conns"))
    want = set(args.test_names)
    return [(t, label) for t, label in out if (t[0] == "c" and "conns" in want) or t in want]


def start_server(logdir: Path) -> tuple[Any, int, int]:
    with open(logdir / "wsload-serve.log", "ab") as log:
        server = procs.spawn([str(WSLOAD), "serve"], stdout=subprocess.PIPE, stderr=log)
    line = procs.LineReader(server, lambda: "the target server exited").expect("listening", 15)
    raw_port, ws_port = (int(x) for x in line.split())
    return server, raw_port, ws_port


def ensure_running(col: Column, server_ports: tuple[int, int], logdir: Path, test: str, notes: list[str]) -> None:
    """A proxy that died in an earlier test is started again (and that is reported)."""
    if not col.is_proxy or (col.proc and col.proc.poll() is None):
        return
    if col.proc:
        notes.append(f"{col.name}: exited with status {col.proc.returncode}; started again before {test}")
        say(notes[-1])
    columns.start(col, server_ports, logdir)


def run_tests(args: argparse.Namespace, cols: list[Column], server: Any, raw_port: int, ws_port: int,
              logdir: Path, res: dict[str, dict[str, Any]]) -> list[str]:
    tests, notes = plan(args), list[str]()
    for i, test in enumerate(tests):
        say(f"[{i + 1}/{len(tests)}] {test.name}")
        for col in cols:
            if col.error:
                continue
            try:
                measure.settle(col)  # first: a proxy on its way out is gone after it
                ensure_running(col, (raw_port, ws_port), logdir, test.name, notes)
                # a direct column talks to the server's own port for its protocol
                port = ws_port if col.proto == "ws" else raw_port
                r = measure.run(WSLOAD, col, server.pid, port, test)
            except procs.BenchError as e:
                r = {"error": str(e)}
            key = "mbps" if test.name in ("up", "down") else ""
            res[col.name][test.name] = measure.better(res[col.name].get(test.name), r, key) if key else r
    return notes


def run_idle(args: argparse.Namespace, cols: list[Column], server: Any, server_ports: tuple[int, int], logdir: Path,
             res: dict[str, dict[str, Any]]) -> list[str]:
    proxies = [c for c in cols if c.is_proxy and not c.error]
    notes = []
    if args.idle_columns:
        wanted = [n.strip() for n in args.idle_columns.split(",") if n.strip()]
        chosen = [c for c in proxies if c.name in wanted]
        notes += [f"--idle-columns {n}: not a proxy column of this run" for n in wanted
                  if n not in [c.name for c in chosen]]
    else:
        chosen = [c for c in proxies if not c.forks]
        notes += [f"{c.name}: left out of the idle step (it forks a process per connection; name it "
                  f"in --idle-columns to include it)" for c in proxies if c not in chosen]
    why = columns.check_fd_limit(args.idle)
    if why:
        say(f"idle step skipped: {why}")
        args.idle = 0  # no idle rows in the table
        return notes + [f"idle step skipped: {why}"]
    test = measure.Test("idle", ["--test", "idle", "--conns", str(args.idle), "--setup-cap", "120",
                                 "--subprotocol", args.subprotocol], 160, 60, memory=True)
    for col in chosen:
        say(f"idle: {args.idle} connections through {col.name}")
        columns.stop(col)
        try:
            columns.start(col, server_ports, logdir, extra=col.idle_extra.format(conns=args.idle + 100))
            time.sleep(0.5)
            start = procs.memory_kb(procs.tree(col.proc.pid)) if col.proc else (0, 0)
            r = measure.run(WSLOAD, col, server.pid, server_ports[0], test)
            r["memory_at_start"] = {"rss_kb": start[0], "pss_kb": start[1]}
        except procs.BenchError as e:
            r = {"error": str(e)}
        res[col.name]["idle"] = r
        columns.stop(col)
    return notes


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    try:
        cols = choose_columns(args)
        build_wsload()
    except procs.BenchError as e:
        say(str(e))
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out_dir = Path(args.out)
    logdir = out_dir / "logs" / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    machine = {"cores": os.cpu_count(), "load_before": procs.load_average(),
               "busy_before_percent": round(procs.busy_percent(1.0), 1)}
    say(f"load average {machine['load_before']}, CPU busy {machine['busy_before_percent']:.0f}% "
        f"of {100 * (os.cpu_count() or 1)}% before the run")
    res: dict[str, dict[str, Any]] = {c.name: {} for c in cols}
    extra_notes: list[str] = []
    server, raw_port, ws_port = start_server(logdir)
    for col in cols:
        if not col.is_proxy:
            continue
        try:
            columns.prepare(col, say)
            columns.start(col, (raw_port, ws_port), logdir)
            pids = procs.tree(col.proc.pid) if col.proc else []
            rss, pss = procs.memory_kb(pids)
            res[col.name]["start"] = {"memory": {"rss_kb": rss, "pss_kb": pss, "processes": len(pids)}}
        except procs.BenchError as e:
            col.error = str(e)
            extra_notes.append(f"{col.name}: not run: {e}")
            say(f"{col.name}: not run: {e}")
    extra_notes += run_tests(args, cols, server, raw_port, ws_port, logdir, res)
    if args.idle:
        extra_notes += run_idle(args, cols, server, (raw_port, ws_port), logdir, res)
    for col in cols:
        columns.stop(col)
    procs.stop(server)
    elapsed = time.monotonic() - began
    names = [c.name for c in cols]
    proxies = [c.name for c in cols if c.is_proxy and not c.error]
    tests = labels(args)
    title = (f"Benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f"{' (--quick)' if args.quick else ''}: {machine['cores']} cores, load average "
             f"{machine['load_before']} and CPU {machine['busy_before_percent']:.0f}% busy before the "
             f"run, {elapsed:.0f} s")
    lines = [title, ""] + report.results_table(res, names, args.test_names, args.conn_counts, args.idle) + [""]
    if tests:
        lines += report.cpu_table(res, names, tests) + [""]
    lines += [f"- {c.name}: {c.describe}{f' ({c.version})' if c.version else ''}" for c in cols]
    baselines = {c.name: c.baseline for c in cols if c.baseline}
    repeats = {c.name: c.repeats for c in cols if c.repeats}
    lines += [f"- {n}" for n in report.notes(res, names, tests, proxies, baselines, repeats) + extra_notes]
    text = "\n".join(lines) + "\n"
    print(text)
    record = {"stamp": stamp, "quick": args.quick, "elapsed_secs": round(elapsed, 1), "machine": machine,
              "notes": extra_notes,
              "options": {k: v for k, v in vars(args).items() if k != "conn_counts"},
              "columns": {c.name: {"describe": c.describe, "command": c.command, "version": c.version,
                                   "client_args": list(c.client_args),
                                   "error": c.error, "results": res[c.name]} for c in cols}}
    (out_dir / f"run-{stamp}.json").write_text(json.dumps(record, indent=1) + "\n")
    (out_dir / f"run-{stamp}.md").write_text(text)
    say(f"results in {(out_dir / f'run-{stamp}.json')}; logs in {logdir}")
    return 0


def _terminate(signum: int, _frame: Optional[object]) -> None:
    say(f"stopped by signal {signum}")
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        code = main(sys.argv[1:])
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    except procs.BenchError as e:
        say(str(e))
        code = 1
    finally:
        procs.stop_all()
    sys.exit(code)
