"""Upstream's `websockify.sysloghandler`: a SysLogHandler that writes RFC 5424 lines.

`WebsockifySysLogHandler` takes the standard library's SysLogHandler's
address, facility and socket type (a Unix socket path, or (host, port) over
UDP or TCP, with its reconnecting of a Unix socket), and adds upstream's
`ident` and `legacy`. Each record is one line:

- RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME IDENT PID - - MESSAGE`, the time in UTC;
- legacy (BSD, RFC 3164 style): `<PRI>IDENT[PID]: MESSAGE`.

The ident is cut to 24 characters (old syslog daemons' limit), the hostname to
255. The message is the handler's formatter's output with its newlines made
spaces and other control characters escaped, so that no record forges
another; non-ASCII text is UTF-8 after a byte order mark, as RFC 5424 §6.4
asks. Over a stream socket each line ends with a newline (RFC 6587's
non-transparent framing).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import time
from socket import SOCK_DGRAM, gethostname
from typing import Any

from .protocol.logsafe import escape_controls

__all__ = ["WebsockifySysLogHandler", "syslog_head"]

MAX_IDENT = 24
MAX_HOSTNAME = 255
_BOM = b"\xef\xbb\xbf"


def syslog_head(priority: int, ident: str, pid: int, created: float, hostname: str, legacy: bool) -> str:
    """What goes before the message: `<PRI>` and RFC 5424's header, or the legacy one."""
    ident = ident[:MAX_IDENT]
    if legacy:
        return f"<{priority}>{ident}[{pid}]: "
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    stamp += f".{int(created * 1000) % 1000:03d}Z"
    # RFC 5424 writes an empty field as "-", and a field holds no space.
    host = hostname[:MAX_HOSTNAME].replace(" ", "") or "-"
    return f"<{priority}>1 {stamp} {host} {ident.replace(' ', '') or '-'} {pid} - - "


class WebsockifySysLogHandler(logging.handlers.SysLogHandler):
    """Syslog over a Unix socket, UDP or TCP, one RFC 5424 (or legacy) line per record."""

    socket: Any  # the standard library's own attribute, which typeshed does not declare

    def __init__(self, address: str | tuple[str, int] = ("localhost", logging.handlers.SYSLOG_UDP_PORT),
                 facility: int = logging.handlers.SysLogHandler.LOG_USER, socktype: int | None = None,
                 ident: str | None = None, legacy: bool = False) -> None:
        """A Unix socket `address` is tried as a datagram socket, then a stream one, unless
        `socktype` says which; (host, port) is UDP unless `socktype` is SOCK_STREAM."""
        self.legacy = legacy
        super().__init__(address, facility, socktype)  # type: ignore[arg-type]
        # The standard library's emit() put `ident` before the message; here it is the
        # header's APP-NAME, so it is set after its __init__, which leaves it alone.
        self.ident = ident or ""

    def line(self, record: logging.LogRecord) -> bytes | None:
        """The bytes sent for `record`, or None when its formatted text is empty."""
        text = self.format(record).replace("\n", " ")
        if not text:
            return None
        text = escape_controls(text)
        priority = self.encodePriority(self.facility, self.mapPriority(record.levelname))
        head = syslog_head(priority, self.ident, os.getpid(), record.created, gethostname(),
                           self.legacy)
        body = text.encode("ascii") if text.isascii() else _BOM + text.encode("utf-8", "replace")
        line = head.encode("ascii", "replace") + body
        return line if self.socktype == SOCK_DGRAM else line + b"\n"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.line(record)
            if line is None:
                return
            if self.socket is None:  # the daemon was not listening yet when we started
                self.createSocket()
            if self.unixsocket:
                try:
                    self.socket.send(line)
                except OSError:  # syslogd restarted: its socket is a new one
                    self.socket.close()
                    self._connect_unixsocket(self.address)  # type: ignore[attr-defined]
                    self.socket.send(line)
            elif self.socktype == SOCK_DGRAM:
                self.socket.sendto(line, self.address)
            else:
                self.socket.sendall(line)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging reports its own failures, never raises them
            self.handleError(record)
