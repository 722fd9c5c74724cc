"""Where log lines go: standard error (or the journal), a file, syslog.

- Standard error gets timestamped lines, except when it is the journal
  (JOURNAL_STREAM names it): then `<N>` priority prefixes and no timestamps, so
  `journalctl -p warning` works and journald's own timestamps are not doubled.
- `--log-file`: timestamped lines; the file is reopened when it was moved or
  removed (logrotate without copytruncate), which WatchedFileHandler checks
  before each line. It is opened with O_NOFOLLOW, at start and at each reopen:
  a symbolic link at that name is refused (at start a ConfigError telling to
  name the real file; at a reopen the lines are dropped, with one warning on
  standard error, until a regular file is back), so nobody who can write the
  directory makes the server append to a file of their choice.
- `--syslog`: RFC 5424 (or BSD with `--legacy-syslog`), ident `websockify`,
  facility DAEMON under `-D`, else USER, to a Unix socket such as /dev/log or
  to `host:port` over UDP.

Every record, whichever handler writes it, goes through one formatter's last
pass (_SafeFormatter): each line escaped (control characters, line separators;
the backslash is left alone, so what printable() escaped stays as it was) and
bounded, the traceback included, whose exception text (an auth plugin's
exception may carry a client's header) is never trusted to be one short line:

- a line: at most LINE_LIMIT characters, the rest cut with a note saying how
  much was cut (an exception's text too: it is one line, its newlines escaped);
- a record: at most RECORD_LIMIT characters over all its lines; past that, its
  first line, a note, and the traceback's last lines (the innermost frames and
  the exception) that fit.

(The limits and the traceback's lines are log_bounds.py's, shared with JSON.)
`--log-format json` (log_json.py) writes each record as one JSON object
instead, on every destination (after the journal's `<N>`, as syslog's MSG),
escaped and bounded alike.

Handlers are opened after daemonizing, so their descriptors are never closed
or reused under them (upstream's `-D --syslog` wrote log lines into clients).
"""
from __future__ import annotations

import errno
import io
import logging
import logging.handlers
import os
import socket
import sys

from ..addresses import parse_host, parse_port
from ..config import LogSettings
from ..errors import ConfigError
from ..protocol.logsafe import escape_controls
from .log_bounds import LINE_LIMIT, bounded_line, bounded_record, cut_line, exception_lines, utc_timestamp
from .log_json import JsonFormatter

_TIMESTAMPED = "%(asctime)s websockify[%(process)d] %(levelname)s %(message)s"
# sd-daemon(3) priorities, by logging level.
_JOURNAL_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                     logging.CRITICAL: 2}
TRAFFIC_LOGGER = "websockify.traffic"


_LOG_FILE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class _NoFollowFileHandler(logging.handlers.WatchedFileHandler):
    """WatchedFileHandler that never opens its file through a symbolic link."""

    def __init__(self, filename: str, stderr: logging.Handler) -> None:
        self._refused = False
        self._stderr = stderr  # where a refused reopen is told, in the format standard error has
        super().__init__(filename, encoding="utf-8")

    def _open(self) -> "io.TextIOWrapper":
        fd = os.open(self.baseFilename, _LOG_FILE_FLAGS, 0o666)
        try:
            return open(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reopenIfNeeded()  # closes and reopens after logrotate's move
            if self.stream is None:  # a reopen failed before: try again
                self.stream = self._open()
                self._statstream()
        except OSError as exc:
            if not self._refused:
                self._refused = True
                why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
                self._stderr.handle(logging.makeLogRecord({
                    "name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                    "msg": "--log-file %s: cannot reopen (%s); log lines are dropped until it is a regular "
                           "file again", "args": (self.baseFilename, why)}))
            return
        self._refused = False
        logging.StreamHandler.emit(self, record)


class _SafeFormatter(logging.Formatter):
    """Every line escaped and bounded, the traceback's too (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        record.message = escape_controls(message[:LINE_LIMIT])
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        lines = [cut_line(line, len(line) - len(record.message) + len(message))]
        if record.exc_info and record.exc_info[1] is not None:
            lines.extend(exception_lines(record.exc_info[1]))
        elif record.exc_text:  # formatted elsewhere: escaped here all the same
            lines.extend(bounded_line(text) for text in record.exc_text.splitlines())
        if record.stack_info:
            lines.extend(bounded_line(text) for text in record.stack_info.splitlines())
        return bounded_record(lines)


class _JournalFormatter(logging.Formatter):
    """`<N>` before each line of what `body` writes, N the record's priority."""

    def __init__(self, body: logging.Formatter | None = None) -> None:
        super().__init__()
        self._body = body or _SafeFormatter("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _JOURNAL_PRIORITY.get(record.levelno, 6)
        # One journal entry per line: each line of a traceback gets the prefix.
        return "\n".join(f"<{priority}>{line}" for line in self._body.format(record).split("\n"))


class _SyslogFormatter(logging.Formatter):
    """The part after `<PRI>`: RFC 5424's `1 TIMESTAMP HOST APP PROCID MSGID SD MSG`, or BSD's
    `websockify[PID]: MSG`, MSG what `body` writes. A record is one line: newlines in tracebacks
    become ` | `."""

    def __init__(self, legacy: bool, body: logging.Formatter | None = None) -> None:
        super().__init__()
        self._body = body or _SafeFormatter("%(message)s")
        self._legacy = legacy
        self._host = socket.gethostname() or "-"

    def format(self, record: logging.LogRecord) -> str:
        text = " | ".join(self._body.format(record).split("\n"))
        if self._legacy:
            return f"websockify[{record.process}]: {text}"
        return f"1 {utc_timestamp(record)} {self._host} websockify {record.process} - - {text}"


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stderr is the journal."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return device.isdigit() and inode.isdigit() and (st.st_dev, st.st_ino) == (int(device), int(inode))


def syslog_address(text: str) -> "str | tuple[str, int]":
    """`--syslog`: a Unix socket path (contains a `/`), or `host:port` for UDP."""
    if "/" in text:
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--syslog: {text!r} is neither a socket path nor HOST:PORT")
    return parse_host(host, "--syslog"), parse_port(port, "--syslog")


def _probe_unix_socket(path: str) -> None:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # the two kinds syslog daemons listen with
        with socket.socket(socket.AF_UNIX, kind) as probe:
            try:
                probe.connect(path)
                return
            except OSError as exc:
                if exc.errno != errno.EPROTOTYPE:
                    raise


def setup_logging(settings: LogSettings) -> None:
    """Install the handlers; ConfigError if a log file or syslog cannot be opened."""
    handlers: list[logging.Handler] = []
    if settings.format == "json":
        body: logging.Formatter = JsonFormatter()
        timestamped: logging.Formatter = body  # the object has its time and pid
    else:
        body, timestamped = _SafeFormatter("%(message)s"), _SafeFormatter(_TIMESTAMPED)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(_JournalFormatter(body) if stderr_is_journal() else timestamped)
    handlers.append(stderr)
    if settings.log_file is not None:
        try:
            file_handler = _NoFollowFileHandler(settings.log_file, stderr)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(f"--log-file: {settings.log_file} is a symbolic link, refused (anyone who can "
                                  "replace it could choose the file we append to); point --log-file at the "
                                  "real file") from None
            raise ConfigError(f"--log-file: cannot open {settings.log_file}: {exc.strerror}") from None
        file_handler.setFormatter(timestamped)
        handlers.append(file_handler)
    if settings.syslog is not None:
        address = syslog_address(settings.syslog)
        facility = (logging.handlers.SysLogHandler.LOG_DAEMON if settings.daemon
                    else logging.handlers.SysLogHandler.LOG_USER)
        try:
            if isinstance(address, str):
                _probe_unix_socket(address)  # the handler would ignore a missing socket for ever
            syslog = logging.handlers.SysLogHandler(address=address, facility=facility)
        except OSError as exc:
            raise ConfigError(f"--syslog: cannot reach {settings.syslog}: {exc.strerror or exc}") from None
        syslog.append_nul = False
        syslog.setFormatter(_SyslogFormatter(settings.legacy_syslog, body))
        handlers.append(syslog)
    # Each record would otherwise walk the stack for its source line and look up
    # thread and multiprocessing names that no line of ours prints.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(logging.DEBUG if settings.verbose else logging.INFO)
    # websockets logs frames with their contents at DEBUG: payloads never reach our logs.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger(TRAFFIC_LOGGER).setLevel(logging.INFO if settings.traffic else logging.WARNING)
