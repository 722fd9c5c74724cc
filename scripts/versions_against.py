#!/usr/bin/env python3
"""Print where this environment's packages differ from a constraints file.

`make test-latest` runs it before the tests, so that when the newest releases
fail, the output starts with the suspects:

    test-latest: 2 packages differ from constraints.txt:
      redis 8.1.0 -> 8.2.0
      jwcrypto 1.6.1 -> 1.6.2

Always exits 0: it informs, the tests decide.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """{canonical name: version} for every `name==version` line of a constraints file."""
    found = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def differences(pinned: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per pinned package whose installed version is another, or that is missing."""
    lines = []
    for name, version in sorted(pinned.items()):
        now = installed.get(name)
        if now != version:
            lines.append(f"  {name} {version} -> {now or 'not installed'}")
    return lines


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "constraints.txt")
    installed = {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    lines = differences(pins(path.read_text(encoding="utf-8")), installed)
    if lines:
        print(f"test-latest: {len(lines)} package{'s' if len(lines) != 1 else ''} differ from {path}:")
        print("\n".join(lines))
    else:
        print(f"test-latest: the same versions as {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
