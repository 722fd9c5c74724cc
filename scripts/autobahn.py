#!/usr/bin/env python3
"""`make autobahn`: the Autobahn test suite's fuzzing client against websockify.

websockify runs in front of a TCP echo target, and, as a reference column,
websockets' own asyncio server echoes beside it (scripts/autobahn_echo.py).
Autobahn (autobahntestsuite, Python 2 only) lives in its own virtualenv,
.autobahn/venv, built on first use from a Python 2.7 found on this machine
with the pins of scripts/autobahn_requirements.txt; wstest runs through
scripts/autobahn_wstest.py, which adds a relay check to each case.

Each case's outcome must be one that scripts/autobahn_expected.json accepts;
a failure that only the relay explains (text echoed as binary, other message
boundaries) passes only if the bytes that came back are the bytes sent.
The compression cases (12.*, 13.*) run too, and must find permessage-deflate
declined (UNIMPLEMENTED); the performance cases (9.*) only with --performance
(but never 9.7.1 and 9.8.1, see ALWAYS_EXCLUDED). A new outcome, once checked
in the HTML report, goes into the expectations file with --update.

Exit status: 0 as expected, 1 a difference (or websockify died, or logged a
traceback), 2 Autobahn cannot be set up here (the reason in one line). Under
make, this status shows in make's "Error N" line; make itself then exits 2.

    .venv/bin/python scripts/autobahn.py [--performance] [--cases 5.*,6.4.*] [--update]
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import autobahn_report as report

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
WORK = ROOT / ".autobahn"
VENV = WORK / "venv"
REQUIREMENTS = SCRIPTS / "autobahn_requirements.txt"
EXPECTED = SCRIPTS / "autobahn_expected.json"
VIRTUALENV = "virtualenv==16.7.12"  # the last one that runs on Python 2 alone and bundles pip for it
SETUP_TIMEOUT_S = 900
START_TIMEOUT_S = 20


class Unavailable(Exception):
    """Autobahn cannot run here: exit 2 with this one line."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Exit status: 0 as expected, 1 a difference, 2 cannot set up.")
    add = parser.add_argument
    add("--cases", help="comma-separated Autobahn case patterns, e.g. '5.*,6.4.*' (default: all)")
    add("--performance", action="store_true", help="include the 9.* limits/performance cases (minutes)")
    add("--no-reference", action="store_true", help="skip websockets' own server (halves the time)")
    add("--timeout", type=float, help="seconds the fuzzing client may run (default: 900, 2400 with 9.*)")
    add("--update", action="store_true", help="add this run's outcomes to the expectations file")
    add("--reset", action="store_true", help="with --update: replace, not add to, the outcomes of cases run")
    return parser.parse_args(argv)


# -- setup --------------------------------------------------------------------

def find_python2() -> str:
    candidates = [os.environ.get("AUTOBAHN_PYTHON2", ""), "python2.7", "python2"]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")), reverse=True)
    candidates += ["/usr/bin/python2.7", "/usr/local/bin/python2.7"]
    for candidate in filter(None, candidates):
        path = shutil.which(candidate)
        if path is None:
            continue
        # A pyenv shim exists even where no 2.7 is selected: ask the interpreter itself.
        probe = subprocess.run([path, "-c", "import sys; print(sys.version_info[:2] == (2, 7))"],
                               capture_output=True, text=True, timeout=30)
        if probe.stdout.strip() == "True":
            return path
    raise Unavailable("no Python 2.7 found (Autobahn's testsuite needs it): set AUTOBAHN_PYTHON2=/path/to/python2.7")


def ensure_venv() -> Path:
    """.autobahn/venv with the pinned suite; rebuilt when the pins change."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    pins = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == pins:
        return python
    python2 = find_python2()
    WORK.mkdir(exist_ok=True)
    log = WORK / "setup.log"
    print(f"setting up Autobahn's Python 2 virtualenv in {VENV.relative_to(ROOT)} (log: {log.relative_to(ROOT)})",
          flush=True)
    bootstrap = WORK / "bootstrap"
    with log.open("w") as out:
        def run(step: str, command: list[str], **env: str) -> None:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=SETUP_TIMEOUT_S,
                                  env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **env})
            if done.returncode != 0:
                raise Unavailable(f"cannot set up Autobahn: {step} failed (see {log.relative_to(ROOT)})")
        if not (bootstrap / "virtualenv.py").exists():
            run(f"installing {VIRTUALENV} with {python2} -m pip",
                [python2, "-m", "pip", "install", "--quiet", "--target", str(bootstrap), VIRTUALENV])
        shutil.rmtree(VENV, ignore_errors=True)
        run("creating the virtualenv", [python2, "-m", "virtualenv", "--no-download", str(VENV)],
            PYTHONPATH=str(bootstrap))
        run("installing the pinned autobahntestsuite",
            [str(VENV / "bin" / "pip"), "install", "--quiet", "-r", str(REQUIREMENTS)])
    stamp.write_text(pins)
    return python


# -- the servers ----------------------------------------------------------------

class Servers:
    """The echo target, websockify in front of it, and the reference server; each logs to a file."""

    def __init__(self, with_reference: bool):
        self.with_reference = with_reference
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def _start(self, name: str, command: list[str], pattern: str) -> int:
        log = WORK / f"{name}.log"
        with log.open("wb") as out:
            self.processes[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = re.search(pattern, log.read_text(errors="replace"))
            if found:
                self.ports[name] = int(found.group(1))
                return self.ports[name]
            if self.processes[name].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start (see {log.relative_to(ROOT)})")

    def __enter__(self) -> "Servers":
        try:
            echo = [sys.executable, str(SCRIPTS / "autobahn_echo.py")]
            target = self._start("target", echo + ["tcp"], r"port (\d+)")
            websockify = str(Path(sys.executable).parent / "websockify")
            self._start("websockify", [websockify, "127.0.0.1:0", f"127.0.0.1:{target}"],
                        r"listening on 127\.0\.0\.1:(\d+)")
            if self.with_reference:
                self._start("websockets", echo + ["websocket"], r"port (\d+)")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def websockify_problem(self) -> str | None:
        """websockify must still be running, and must never have logged a traceback."""
        if self.processes["websockify"].poll() is not None:
            return f"websockify exited during the run ({self.processes['websockify'].returncode})"
        if "Traceback" in (WORK / "websockify.log").read_text(errors="replace"):
            return "websockify logged a traceback (see .autobahn/websockify.log)"
        return None


# -- the run --------------------------------------------------------------------

def spec(args: argparse.Namespace, servers: Servers, outdir: Path) -> report.Json:
    targets = [{"agent": "websockify", "url": f"ws://127.0.0.1:{servers.ports['websockify']}"}]
    if servers.with_reference:
        targets.append({"agent": "websockets", "url": f"ws://127.0.0.1:{servers.ports['websockets']}"})
    return {"outdir": str(outdir), "servers": targets, "cases": patterns(args),
            "exclude-cases": exclusions(args), "exclude-agent-cases": {}}


def patterns(args: argparse.Namespace) -> list[str]:
    return [p.strip() for p in args.cases.split(",") if p.strip()] if args.cases else ["*"]


# 1000 empty messages, each waiting for its echo: an empty message has no bytes
# to relay, so nothing comes back, and the case only times out, after 60 s.
ALWAYS_EXCLUDED = ["9.7.1", "9.8.1"]


def exclusions(args: argparse.Namespace) -> list[str]:
    return ALWAYS_EXCLUDED + ([] if args.performance else ["9.*"])


def run_wstest(python: Path, spec_file: Path, timeout_s: float) -> None:
    log = WORK / "wstest.log"
    with log.open("wb") as out:
        wstest = subprocess.Popen([str(python), str(SCRIPTS / "autobahn_wstest.py"), "-m", "fuzzingclient",
                                   "-s", str(spec_file)], stdout=out, stderr=subprocess.STDOUT, cwd=WORK)
        try:
            wstest.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            wstest.kill()
            wstest.wait(timeout=10)
            raise RuntimeError(f"the fuzzing client did not finish in {timeout_s:.0f} s "
                               f"(see {log.relative_to(ROOT)}; --timeout to allow more)") from None
    if wstest.returncode != 0:
        raise RuntimeError(f"the fuzzing client failed ({wstest.returncode}): see {log.relative_to(ROOT)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        python = ensure_venv()
    except Unavailable as exc:
        print(f"autobahn: {exc}", flush=True)
        return 2
    outdir = WORK / "reports"
    shutil.rmtree(outdir, ignore_errors=True)
    timeout_s = args.timeout or (2400 if args.performance else 900)
    started = time.monotonic()
    with Servers(with_reference=not args.no_reference) as servers:
        spec_file = WORK / "fuzzingclient.json"
        spec_file.write_text(json.dumps(spec(args, servers, outdir), indent=2))
        print(f"running Autobahn's fuzzing client (at most {timeout_s:.0f} s; log: .autobahn/wstest.log)",
              flush=True)
        run_wstest(python, spec_file, timeout_s)
        problem = servers.websockify_problem()
    elapsed = time.monotonic() - started
    results = report.read_report(outdir, "websockify")
    reference = {} if args.no_reference else report.read_report(outdir, "websockets")
    cases = report.load_expectations(EXPECTED)
    if args.update:
        cases = report.updated(cases, results, reference, args.reset)
        report.write_expectations(EXPECTED, cases)
        print(f"updated {EXPECTED.relative_to(ROOT)}")
    wanted = [c for c in cases if report.selected(c, patterns(args)) and not report.selected(c, exclusions(args))]
    problems = report.mismatches(cases, results, wanted)
    if problem:
        problems.append(problem)
    print_summary(results, reference, cases, problems, elapsed, outdir)
    return 1 if problems else 0


def differs(mine: report.Result, theirs: report.Result) -> bool:
    """Not the same outcome, nor outcomes that timing decides between, nor an echo only the relay changed."""
    if mine.same(mine.outcome) == mine.same(theirs.outcome):
        return False
    return not (mine.column == "relay" and mine.same(theirs.outcome) == "whole")


def print_summary(results: dict[str, report.Result], reference: dict[str, report.Result], cases: dict[str, report.Json],
                  problems: list[str], elapsed: float, outdir: Path) -> None:
    print()
    print("\n".join(report.summary_table(results, reference)))
    print("\nNot plainly OK (websockify outcome | websockets' outcome | reason):")
    for case_id in sorted(results, key=report.case_key):
        result = results[case_id]
        if result.outcome != "OK/OK":
            theirs = reference[case_id].outcome if case_id in reference else "-"
            reason = cases[case_id].get("reason", "-") if case_id in cases else "(no expectation)"
            print(f"  {case_id:<9} {result.outcome:<44} | {theirs:<24} | {reason}")
    differing = [c for c in sorted(results, key=report.case_key) if c in reference and differs(results[c], reference[c])]
    if reference:
        print("\nDifferences from websockets' own server, besides the relay's and timing's:"
              + ("" if differing else " none"))
        for case_id in differing:
            print(f"  {case_id:<9} websockify {results[case_id].outcome}, websockets {reference[case_id].outcome}")
    print(f"\n{len(results)} cases in {elapsed:.0f} s; HTML report: {(outdir / 'index.html').relative_to(ROOT)}")
    if problems:
        print(f"\n{len(problems)} difference(s) from {EXPECTED.relative_to(ROOT)}:")
        print("\n".join(f"  {line}" for line in problems))
    else:
        print(f"as expected ({EXPECTED.relative_to(ROOT)})")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as exc:
        print(f"autobahn: {exc}", flush=True)
        sys.exit(1)
