"""websockify: a WebSocket-to-TCP bridge and program-wrapping launcher."""

__version__ = "1.0.0.dev0"
