"""websockify: a WebSocket-to-TCP bridge and program-wrapping launcher."""
import importlib
from typing import Any

__version__ = "1.0.0.dev0"

# Upstream's modules, importable as attributes (`websockify.websocketproxy`) once asked for.
_SUBMODULES = frozenset({"websocketproxy", "websockifyserver", "websocket", "websocketserver", "sysloghandler",
                         "auth_plugins", "token_plugins"})
# Upstream's __init__ does `from .websocket import *` and `from .websocketproxy import *`:
# their public names are the package's, imported on first use (not on `import websockify`).
_STAR_MODULES = ("websocketproxy", "websocket")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if not name.startswith("_"):
        for module_name in _STAR_MODULES:
            try:
                module = importlib.import_module(f".{module_name}", __name__)
            except ImportError:
                continue
            if name in getattr(module, "__all__", ()):
                return getattr(module, name)
    raise AttributeError(f"module 'websockify' has no attribute {name!r}")
