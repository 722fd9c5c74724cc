"""websockify: a WebSocket-to-TCP bridge and program-wrapping launcher."""
from typing import Any

__version__ = "1.0.0.dev0"


def __getattr__(name: str) -> Any:
    # `websockify.WebSocketProxy`, as upstream exports it, without importing the server on `import websockify`.
    if name == "WebSocketProxy":
        from .websocketproxy import WebSocketProxy
        return WebSocketProxy
    raise AttributeError(f"module 'websockify' has no attribute {name!r}")
