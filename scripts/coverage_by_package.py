"""Line and branch coverage per package, from `coverage json`'s report (make coverage).

coverage.py reports files; a package's figure is the sum over its files, so a
large, well-tested module weighs more than a small, untested one.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import PurePosixPath

FIELDS = ("num_statements", "covered_lines", "num_branches", "covered_branches")


def package_of(path: str) -> str:
    """`websockify/server/tls.py` → `websockify.server`; top-level modules → `websockify`."""
    return ".".join(PurePosixPath(path).parent.parts)


def totals_by_package(report: dict[str, dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for path, data in report["files"].items():
        for field in FIELDS:
            totals[package_of(path)][field] += data["summary"][field]
    return dict(totals)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def main(json_path: str) -> None:
    with open(json_path, encoding="utf-8") as file:
        report = json.load(file)
    print(f"{'package':<28} {'lines':>13} {'branches':>16}")
    for name, t in sorted(totals_by_package(report).items()):
        print(f"{name:<28} {percent(t['covered_lines'], t['num_statements'])} of {t['num_statements']:>5}"
              f"  {percent(t['covered_branches'], t['num_branches'])} of {t['num_branches']:>5}")
    s = report["totals"]
    print(f"{'all':<28} {percent(s['covered_lines'], s['num_statements'])} of {s['num_statements']:>5}"
          f"  {percent(s['covered_branches'], s['num_branches'])} of {s['num_branches']:>5}")


if __name__ == "__main__":
    main(sys.argv[1])
