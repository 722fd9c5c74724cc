"""What the process counts for --metrics, and the one meter it counts with.

Code that counts calls `meter()`: a meter that does nothing unless `install()`
put a Prometheus one in its place (app.py and worker.py, with --metrics), so a
run without the option pays one attribute lookup and a call per event, and
never imports prometheus_client.
"""
from __future__ import annotations

from .meter import NULL_METER, Meter

_current: Meter = NULL_METER


def meter() -> Meter:
    """The process's meter."""
    return _current


def install(chosen: Meter) -> None:
    """Count with `chosen` from now on (once, at start)."""
    global _current
    _current = chosen


__all__ = ["NULL_METER", "Meter", "install", "meter"]
