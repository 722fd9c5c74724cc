"""The open-file limit: websockify raises its own, the wrapped program keeps the original.

Each client costs two descriptors, and a service manager's default soft limit
(1024) would cap websockify near 500 clients.
"""
from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# The limit websockify started with, before raise_file_limit().
INITIAL_NOFILE: tuple[int, int] = resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_file_limit() -> None:
    """Take the hard open-file limit as our soft one."""
    soft, hard = INITIAL_NOFILE
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open file limit: %s", exc)
