"""websockify: a WebSocket-to-TCP bridge and program-wrapping launcher."""
import importlib
from typing import Any

__version__ = "1.0.0.dev0"

# Upstream's __init__ does `from .websocket import *` and `from .websocketproxy import *`:
# their public names are the package's, imported on first use (not on `import websockify`,
# which the command line's --help must keep cheap). A test holds this table to their __all__.
_EXPORTS = {
    **dict.fromkeys(("WebSocket", "WebSocketWantReadError", "WebSocketWantWriteError", "HandshakeError"),
                    "websocket"),
    **dict.fromkeys(("ProxyRequestHandler", "WebSocketProxy", "select_ssl_version", "websockify_init"),
                    "websocketproxy"),
}


# Upstream's modules, which its `import websockify` made attributes (websockify.websocketproxy).
_SUBMODULES = frozenset({"websocketproxy", "websockifyserver", "websocket", "websocketserver", "sysloghandler",
                         "auth_plugins", "token_plugins"})


def __getattr__(name: str) -> Any:
    # Only upstream's names: `from . import config` asks here first, and must not import the server.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'websockify' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
