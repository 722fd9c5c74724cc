"""Real OS threads, locks and queues, even where eventlet has monkey-patched the stdlib.

A program that embeds websockify may have called `eventlet.monkey_patch()` before
importing us (nova's console proxies do, unless told to use native threads).
Patched `threading` makes green threads that run only when the main thread
yields to eventlet's hub, which our event loop never does: a token lookup or a
handler thread would never run. Code here that hands work to threads takes
them from this module, which gives eventlet's saved originals when it patched,
and the stdlib's otherwise. A handler's thread then has its own eventlet hub
(nova opens one), as upstream's forked process had.
"""
from __future__ import annotations

import queue as _queue
import sys
import threading as _threading
from types import ModuleType
from typing import TYPE_CHECKING


def _original(name: str, default: ModuleType) -> ModuleType:
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched(name if name != "threading" else "thread"):
        module: ModuleType = patcher.original(name)
        return module
    return default


if TYPE_CHECKING:  # the same interfaces as the stdlib's, whichever modules these are
    import queue as queue
    import threading as threading
else:
    threading = _original("threading", _threading)
    queue = _original("queue", _queue)
