"""One exception tree. Each error knows how it reaches the user.

Like h11's status hints, an error carries its own reply: `exit_code` for the
command line, `status` for an HTTP response, `close_code` for a WebSocket
close. Code that catches an error sends what the error says; no table of
codes lives anywhere else.
"""
from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """WebSocket close codes we send or log (RFC 6455 §7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    ABNORMAL = 1006  # never sent: the TCP stream ended without a close frame
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


class Refusal(enum.Enum):
    """Why a client was turned away before its session: the `reason` of a
    handshake failure in the metrics and in JSON logs (docs/logging.md)."""

    BAD_REQUEST = "bad_request"  # malformed, wrong method or version, not WebSocket
    HOST = "host"  # --allowed-hosts
    ORIGIN = "origin"  # --allowed-origins
    AUTH = "auth"  # the auth plugin said no, failed or timed out
    TOKEN_UNKNOWN = "token_unknown"  # no token, or one the plugin does not know (or too many such)
    TOKEN_LOOKUP = "token_lookup"  # the token plugin failed, timed out or is not ready
    LIMIT = "limit"  # --max-connections, --max-connections-per-ip
    TIMEOUT = "timeout"  # --handshake-timeout
    PROXY_HEADER = "proxy_header"  # --proxy-protocol: untrusted peer or no valid header; or one without it
    TLS = "tls"  # the TLS handshake failed, or a plain client on --ssl-only
    SHUTDOWN = "shutdown"  # the server was stopping


class WebsockifyError(Exception):
    """Base of every error websockify raises on purpose."""

    exit_code = 1


class ConfigError(WebsockifyError):
    """A bad option or argument: printed as one line, exit code 2."""

    exit_code = 2


class StartupError(WebsockifyError):
    """The configuration is valid but cannot be put to work (port in use...): exit 1."""

    exit_code = 1


class HttpError(WebsockifyError):
    """A request that gets an HTTP error response instead of a WebSocket. `quiet`: the
    raiser logged it already (throttled), so the reply writes no line of its own.
    `reason`: why, for the metrics; None for an answer that is no failure (a file
    not found, a redirect)."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = (),
                 log_message: str | None = None, *, quiet: bool = False,
                 reason: Refusal | None = Refusal.BAD_REQUEST):
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.log_message = log_message or message
        self.quiet = quiet
        self.reason = reason


class TargetUnavailable(WebsockifyError):
    """The target could not be reached. The message goes to the log; `close_reason`
    (at most 123 bytes, RFC 6455 §5.5) goes to the client with `close_code`."""

    close_code = CloseCode.INTERNAL_ERROR

    def __init__(self, message: str, close_reason: str = "Failed to connect to downstream server"):
        super().__init__(message)
        self.close_reason = close_reason


class PayloadError(WebsockifyError, ValueError):
    """Client data that the subprotocol does not allow."""

    close_code = CloseCode.INVALID_DATA
