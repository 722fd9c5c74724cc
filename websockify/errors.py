"""One exception tree. Each error knows how it reaches the user."""
from __future__ import annotations


class WebsockifyError(Exception):
    """Base of every error websockify raises on purpose."""


class ConfigError(WebsockifyError):
    """A bad option or argument: printed as one line, exit code 2."""

    exit_code = 2


class StartupError(WebsockifyError):
    """The configuration is valid but cannot be put to work (port in use...): exit 1."""

    exit_code = 1


class HttpError(WebsockifyError):
    """A request that gets an HTTP error response instead of a WebSocket."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = (),
                 log_message: str | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.log_message = log_message or message
