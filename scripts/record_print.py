#!/usr/bin/env python3
"""Print a websockify session recording (--record) one message per line.

    scripts/record_print.py FILE.1            offset, direction, size and a preview
    scripts/record_print.py --hex FILE.1      a full hex dump of every message
"""
from __future__ import annotations

import argparse
import sys

from websockify.protocol.recording import CLIENT_TO_TARGET, parse_recording


def preview(data: bytes, width: int = 48) -> str:
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data[:width])
    return text + ("…" if len(data) > width else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording")
    parser.add_argument("--hex", action="store_true", help="dump every byte in hex")
    args = parser.parse_args()
    try:
        with open(args.recording, encoding="ascii") as file:
            text = file.read()
        frames = list(parse_recording(text))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"record_print: {args.recording}: {exc}", file=sys.stderr)
        return 2
    totals = {True: 0, False: 0}
    for frame in frames:
        upward = frame.direction == CLIENT_TO_TARGET
        totals[upward] += len(frame.data)
        arrow = "client → target" if upward else "target → client"
        print(f"{frame.offset_ms / 1000:10.3f}s  {arrow}  {len(frame.data):7d} B  {preview(frame.data)}")
        if args.hex:
            for start in range(0, len(frame.data), 16):
                print(f"            {start:08x}  {frame.data[start:start + 16].hex(' ')}")
    print(f"{len(frames)} messages; {totals[True]} bytes client → target, {totals[False]} bytes target → client"
          + ("" if "'EOF'" in text else "; no EOF: the recording was cut off"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
