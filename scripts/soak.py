#!/usr/bin/env python3
"""Soak test: thousands of WebSocket connections through one websockify process.

Runs an echo server and websockify in front of it, opens --connections
WebSocket connections through websockify (at most --handshakes opening at
once), holds them, then churns for --duration seconds: some connections echo
messages of random size whose every byte is checked, and connections close
(cleanly, or abruptly) and reopen all the time. websockify's RSS and open
descriptors are sampled every --sample-every seconds.

It fails (exit 1) when a session loses or corrupts bytes or fails otherwise,
when websockify's RSS grows more than 10% after the warm-up (see --warmup),
when its descriptors exceed what its connections explain during the run, or
when they do not come back to their starting count once every connection is
closed.

Then the starvation phase (issue 17; soak_starve.py): a fresh websockify,
--starvation-sockets idle sockets from 127.0.0.1 that overflow its pool, held
--starvation-hold seconds while an honest client from 127.0.0.2 connects once
a second, handshakes and echoes one message. It fails when one honest attempt
fails, when websockify's log outgrows its throttle, or when its descriptors do
not come back. --starvation-only runs this phase alone.

Exit 2: it cannot start (e.g. the open-file limit is too low for the
--connections asked for; without --connections it runs as many as the limit fits,
up to 10000).

    .venv/bin/python scripts/soak.py --connections 2000 --duration 30
    .venv/bin/python scripts/soak.py --starvation-only
"""
from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable, Sequence

import psutil
import soak_procs as procs
import soak_starve
from soak_load import Load, LoadSettings
from soak_report import HEADER, Run, Sample
from soak_ws import SessionError

DEFAULT_CONNECTIONS = 10000
STARVATION_SOCKETS = 5000


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options; --connections stays None when not given, for main() to choose (then set_defaults())."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Exit status: 0 pass, 1 fail, 2 cannot start, 130 interrupted.")
    add = parser.add_argument
    add("--connections", type=int, help=f"connections held open at once (default: {DEFAULT_CONNECTIONS}, or as "
                                         "many as the open-file limit fits)")
    add("--duration", type=float, default=600, help="seconds of churn; 3600 for a release (%(default)s)")
    add("--sample-every", type=float, default=5, help="seconds between samples of websockify (%(default)s)")
    add("--hold", type=float, default=10, help="seconds all connections are held before the churn (%(default)s)")
    add("--warmup", type=float, help="seconds of churn before RSS must stay flat (default: the longest of 60 s, "
                                     "10%% of --duration and one connection lifetime, --connections / "
                                     "--churn-rate; at most half of --duration)")
    add("--echo-fraction", type=float, default=0.1, help="share of the connections that echo (%(default)s)")
    add("--echo-rate", type=float, default=2000,
        help="echoed messages per second, all connections together (%(default)s)")
    add("--max-message", type=int, default=4096, help="largest message in bytes; sizes are uniform from 1 "
                                                      "(%(default)s)")
    add("--churn-rate", type=float, help="reconnects per second (default: --connections / 100)")
    add("--abrupt-fraction", type=float, default=0.2,
        help="share of the churn's closes without a close frame, half FIN and half reset (%(default)s)")
    add("--handshakes", type=int, default=64, help="most connections opening at once (%(default)s)")
    add("--timeout", type=float, default=30,
        help="seconds allowed for one handshake, echo or clean close (%(default)s)")
    add("--settle", type=float, default=30,
        help="seconds for websockify's descriptors to come back at the end (%(default)s)")
    add("--seed", type=int, default=1, help="seed of message contents, sizes and lifetimes (%(default)s)")
    add("--starvation-sockets", type=int, default=STARVATION_SOCKETS,
        help="idle sockets from one address in the starvation phase that ends the run, as many as the "
             "open-file limit fits; 0: no starvation phase (%(default)s)")
    add("--starvation-hold", type=float, default=30,
        help="seconds of the starvation phase, an honest client connecting once a second (%(default)s)")
    add("--starvation-only", action="store_true", help="run the starvation phase alone")
    add("--websockify", metavar="COMMAND", help="command that runs websockify, before its arguments "
                                               "(default: the one beside this Python)")
    args = parser.parse_args(argv)
    for name in ("connections", "duration", "sample_every", "handshakes", "max_message", "timeout", "settle"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("hold", "warmup", "echo_rate", "churn_rate", "starvation_sockets"):
        if (getattr(args, name) or 0) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    if args.starvation_hold < 1:
        parser.error("--starvation-hold must be at least 1 (the honest client comes once a second)")
    if args.starvation_only and not args.starvation_sockets:
        parser.error("--starvation-only needs --starvation-sockets above 0")
    if not (0 <= args.echo_fraction <= 1 and 0 <= args.abrupt_fraction <= 1):
        parser.error("--echo-fraction and --abrupt-fraction must be between 0 and 1")
    return args


def set_defaults(args: argparse.Namespace, connections: int) -> None:
    """Settle the connection count, and the defaults that follow from it."""
    args.connections = connections
    if args.churn_rate is None:
        args.churn_rate = args.connections / 100
    if args.warmup is None:
        # websockify's RSS climbs to a plateau over its first few thousand
        # reconnects (garbage awaiting the cycle collector, and the holes it
        # leaves); once every connection has been replaced it is there.
        lifetime = args.connections / args.churn_rate if args.churn_rate > 0 else float("inf")
        args.warmup = min(args.duration / 2, max(60, args.duration / 10, lifetime))


class Soak:
    """The phases of one run, in the event loop: probe, ramp, hold, churn, close, settle."""

    def __init__(self, args: argparse.Namespace, ws_port: int, ws_pid: int, run: Run):
        self.args = args
        self.run = run
        self.load = Load(LoadSettings(
            host="127.0.0.1", port=ws_port, connections=args.connections, echo_fraction=args.echo_fraction,
            echo_rate=args.echo_rate, max_message=args.max_message, churn_rate=args.churn_rate,
            abrupt_fraction=args.abrupt_fraction, handshakes=args.handshakes, timeout=args.timeout,
            seed=args.seed))
        run.stats = self.load.stats
        run.echoers = self.load.echoers
        run.churn_rate = args.churn_rate
        self.websockify = procs.Probe(ws_pid)
        self.own_cpu = procs.OwnCpu()
        self.phase = "probe"
        self._gone = asyncio.Event()  # websockify exited: every phase ends now
        self.t0 = time.monotonic()
        self._last = (self.t0, 0, 0)  # time, echoes, opens at the last sample

    async def main(self) -> None:
        try:
            await self._phases()
        finally:
            self.load.abort()

    async def _phases(self) -> None:
        args, run, stats = self.args, self.run, self.load.stats
        try:
            await self.load.probe()
        except SessionError as exc:
            run.problems.append(f"the relay does not work: {exc}")
            return
        run.fds_start = await self._steady_fds()
        print(HEADER, flush=True)
        self.t0 = time.monotonic()
        self._last = (self.t0, 0, 0)
        sampler = asyncio.create_task(self._sample_every())
        try:
            self.phase = "ramp"
            self.load.start()
            ramp_limit = 60 + args.connections / 50
            if not await self._until(lambda: stats.open_now >= args.connections, ramp_limit):
                run.problems.append(f"only {stats.open_now} of {args.connections} connections open "
                                    f"after {ramp_limit:g}s")
                return
            run.ramp_seconds = time.monotonic() - self.t0
            self.phase = "hold"
            await self._pause(args.hold)
            reading = self.websockify.read()
            run.rss_at_n, run.fds_at_n = reading.rss, reading.fds
            self.phase = "churn"
            run.churn_start = time.monotonic() - self.t0
            self.load.begin_churn()
            await self._pause(args.duration)
            run.churn_end = time.monotonic() - self.t0
            self.sample()
            self.phase = "close"
            unfinished = await self.load.stop(2 * args.timeout)
            if unfinished:
                run.problems.append(f"{unfinished} connections did not close within {2 * args.timeout:g}s")
            self.phase = "settle"
            closed_at = time.monotonic()
            run.settle_limit = args.settle
            await self._until(lambda: self.websockify.read().fds <= (run.fds_start or 0), args.settle, 0.1)
            run.fds_end = self.websockify.read().fds
            if run.fds_end <= run.fds_start:
                run.settle_seconds = time.monotonic() - closed_at
            self.sample()
        except psutil.NoSuchProcess:
            self._websockify_gone()
        finally:
            sampler.cancel()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._gone.wait(), seconds)
        except TimeoutError:
            return
        raise psutil.NoSuchProcess(0)

    def _websockify_gone(self) -> None:
        if not self._gone.is_set():
            self._gone.set()
            self.run.problems.append(f"websockify exited during the run ({self.phase} phase)")
            self.load.abort()

    async def _steady_fds(self) -> int:
        """websockify's descriptor count once the probe's connection is fully closed."""
        previous = -1
        for _ in range(50):
            fds = self.websockify.read().fds
            if fds == previous:
                return fds
            previous = fds
            await asyncio.sleep(0.1)
        return previous

    async def _until(self, condition: Callable[[], bool], seconds: float, poll: float = 0.05) -> bool:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            await self._pause(poll)
        return True

    async def _sample_every(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.args.sample_every)
                self.sample()
        except psutil.NoSuchProcess:
            self._websockify_gone()

    def sample(self) -> None:
        stats, run = self.load.stats, self.run
        reading = self.websockify.read()
        now = time.monotonic()
        last_t, last_echoes, last_opens = self._last
        elapsed = max(now - last_t, 1e-6)
        sample = Sample(now - self.t0, self.phase, stats.open_now, reading.rss, reading.fds,
                        (stats.echoes - last_echoes) / elapsed, (stats.opens - last_opens) / elapsed,
                        stats.error_count, reading.cpu, self.own_cpu.read())
        self._last = (now, stats.echoes, stats.opens)
        run.samples.append(sample)
        print(sample.line(), flush=True)
        # Two per connection in any state, and some slack for sockets whose close
        # websockify has not seen yet: a leak outgrows it within a few samples.
        if run.fds_start is not None and self.phase in ("ramp", "hold", "churn"):
            explained = 2 * (stats.open_now + stats.opening + stats.closing)
            slack = 2 * max(32, self.args.connections // 100)
            if reading.fds > run.fds_start + explained + slack:
                run.fd_overshoots.append(f"{reading.fds} fds with {stats.open_now} open at {sample.t:.0f}s")


def run_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run in uvloop when present; SIGTERM cancels the run like Ctrl-C does."""
    try:
        import uvloop
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await main()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(guarded())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    asked = args.connections
    starving = args.starvation_sockets
    needed = max(0 if args.starvation_only else procs.file_limit_needed(asked or DEFAULT_CONNECTIONS, args.handshakes),
                 starving + 256)
    hard = procs.ensure_file_limit(needed)
    try:
        connections, note = procs.choose_connections(asked or (1 if args.starvation_only else None),
                                                     DEFAULT_CONNECTIONS, hard, args.handshakes)
    except procs.SetupError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    if note:
        print(f"soak: {note}", flush=True)
    set_defaults(args, connections)
    starvation = None
    if starving:
        starving, starve_note = soak_starve.sockets_fitting(starving, hard)
        if starve_note:
            print(f"soak: {starve_note}", flush=True)
        starvation = soak_starve.Starvation(starving, args.starvation_hold, soak_starve.pool_for(starving))
    run = Run(args.connections, args.duration, args.warmup, fitted_from=DEFAULT_CONNECTIONS if note else None)
    workdir = Path(tempfile.mkdtemp(prefix="websockify-soak-"))
    log_path = workdir / "websockify.log"
    starve_log = workdir / "websockify-starvation.log"
    echo = websockify = None
    try:
        echo, echo_port = procs.start_echo_server()
        command = shlex.split(args.websockify) if args.websockify else procs.websockify_command()
        if not args.starvation_only:
            max_connections = args.connections + args.connections // 10 + 2 * args.handshakes
            websockify, ws_port = procs.start_websockify(command, echo_port, max_connections, log_path)
            print(f"soak: websockify pid {websockify.pid} on 127.0.0.1:{ws_port}, echo server pid {echo.pid}; "
                  f"{args.connections} connections, {args.duration:g}s of churn", flush=True)
            soak = Soak(args, ws_port, websockify.pid, run)
            run_loop(soak.main)
            _check_exit(websockify, run.problems)
            procs.stop(websockify)
        if starvation is not None:
            websockify, ws_port = procs.start_websockify(command, echo_port, starvation.pool, starve_log)
            print(f"soak: starvation phase: websockify pid {websockify.pid} on 127.0.0.1:{ws_port} with "
                  f"--max-connections {starvation.pool}; {starvation.sockets} idle sockets from 127.0.0.1 for "
                  f"{starvation.hold:g}s, an honest client from {soak_starve.HONEST_SOURCE} every second", flush=True)
            pid = websockify.pid
            run_loop(lambda: soak_starve.run(starvation, "127.0.0.1", ws_port, pid, starve_log,
                                             timeout=min(args.timeout, 10.0), settle=args.settle,
                                             sample_every=args.sample_every))
            _check_exit(websockify, starvation.problems)
    except procs.SetupError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        run.problems.append("setup")
    except (KeyboardInterrupt, asyncio.CancelledError):
        run.interrupted = True
    except psutil.NoSuchProcess:
        (starvation.problems if starvation is not None else run.problems).append("websockify exited during the run")
    finally:
        procs.stop(websockify)
        procs.stop(echo)
    if "setup" in run.problems:
        shutil.rmtree(workdir, ignore_errors=True)
        return 2
    failed = False
    if not args.starvation_only:
        run.log_warnings, run.log_errors = procs.log_problems(log_path)
        print(run.summary(), flush=True)
        failed = bool(run.failures())
    if starvation is not None and not run.interrupted:
        print(starvation.summary(), flush=True)
        failures = starvation.failures()
        for failure in failures:
            print(f"soak: {failure}", file=sys.stderr)
        failed = failed or bool(failures)
    failed = failed and not run.interrupted
    if failed or run.warnings_hidden():  # the summary points to the log for what it leaves out
        print(f"websockify's logs are kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 130 if run.interrupted else 1 if failed else 0


def _check_exit(websockify: "subprocess.Popen[bytes]", problems: list[str]) -> None:
    """websockify must still run when its phase ends."""
    if websockify.poll() is not None:
        problems.append(f"websockify's exit code: {websockify.returncode}")


if __name__ == "__main__":
    sys.exit(main())
