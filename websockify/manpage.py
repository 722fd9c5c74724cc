"""websockify(1) in roff, from the command line's own definitions.

    python -m websockify.manpage > docs/websockify.1

The options, their sections, help texts and defaults are the records --help
prints (cli.help_sections); the synopsis, description and examples are cli's
too, and the exit codes are the errors' own. Only what --help has no room for
is written here. The output is the same on every run (no date), so a test can
hold the committed page to it. Install it as share/man/man1/websockify.1.
"""
from __future__ import annotations

import sys

from . import __version__
from .cli import DESCRIPTION, EXAMPLES, USAGE_FORMS, help_sections
from .errors import ConfigError, StartupError

NAME = "websockify \\- bridge WebSocket clients to a TCP or Unix-socket service, or wrap a program"

# (tag, text) pairs; 1 and 2 are the errors' own exit codes. With -D, the command that
# started the daemon exits with the daemon's start-up code.
EXIT_STATUS = (
    ("0", ("websockify was stopped by SIGTERM or SIGINT (with no wrapped program), or ended by --timeout, "
           "--idle-timeout or --run-once.")),
    (str(StartupError.exit_code), ("The options are valid but websockify could not start: the port is in use, "
                                   "the source address does not resolve, a --pid-file names a running "
                                   "websockify, a -D daemon died while starting.")),
    (str(ConfigError.exit_code), ("A usage or configuration error: an unknown option, a bad or missing "
                                  "argument, options that do not go together, a certificate, key, token source "
                                  "or log file that cannot be used.")),
    ("128+N", ("With a wrapped program (-- COMMAND) in --wrap-mode exit: the program's own exit status when it "
               "ends, 128+N when signal N killed it. When websockify itself is stopped by signal N: 128+N in the "
               "ignore and respawn modes, the program's status in exit mode (it receives the signal too).")),
)
SIGNALS = (
    ("SIGTERM, SIGINT", ("Stop accepting, close the sessions, stop a wrapped program (the same signal, then "
                         "SIGKILL after --grace-period) and exit. A second one exits without waiting for the "
                         "sessions to close.")),
    ("SIGHUP", ("Read the TLS certificate and key, and the token plugin's tokens, again, for new connections; "
                "forwarded to a wrapped program.")),
    ("SIGUSR1, SIGUSR2", "Forwarded to a wrapped program."),
)
ENVIRONMENT = (
    ("WEBSOCKIFY_EVENT_LOOP", "asyncio: use Python's own event loop even when uvloop is installed."),
    ("SSL_CERT_FILE, SSL_CERT_DIR", ("The CA certificates --ssl-target verifies the target against, instead "
                                     "of the system's.")),
    ("LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES", "systemd socket activation: listen on the sockets systemd passes."),
    ("WEBSOCKIFY_REBIND_SO", ("The rebind.so that moves a wrapped program's port, instead of the one installed "
                              "with websockify or built on first use.")),
)

SEE_ALSO = "openssl\\-ciphers(1), systemd.socket(5), inetd(8), logrotate(8)"


def escape(text: str) -> str:
    """Text for a roff text line: backslashes and minus signs escaped (options must
    stay copyable hyphen-minus), and no line starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _term(spec: str) -> str:
    """`-6, --prefer-ipv6` or `--cert FILE`: names in bold, a metavar in italics, choices plain."""
    aliases = []
    for alias in spec.split(", "):
        name, _, metavar = alias.partition(" ")
        words = f"\\fB{escape(name)}\\fR"
        if metavar:
            words += " " + (escape(metavar) if metavar.startswith("[") else f"\\fI{escape(metavar)}\\fR")
        aliases.append(words)
    return ", ".join(aliases)


def _tagged(tag: str, text: str) -> list[str]:
    return [".TP", tag, escape(text)]


def _paragraphs(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        lines += [".PP", escape(" ".join(paragraph.split()))]
    return lines


def render() -> str:
    lines = [
        f'.TH WEBSOCKIFY 1 "" "websockify {__version__}" "User Commands"',
        ".nh",  # no hyphenation: option names and addresses must not be broken
        ".ad l",
        ".SH NAME",
        NAME,
        ".SH SYNOPSIS",
    ]
    for form in USAGE_FORMS:
        lines += [f"\\fBwebsockify\\fR {escape(form)}", ".br"]
    lines.pop()
    lines.append(".SH DESCRIPTION")
    lines += _paragraphs(DESCRIPTION)[1:]  # no .PP right after .SH
    lines.append(".SH OPTIONS")
    for title, rows in help_sections():
        lines.append(f".SS {escape(title)}")
        for spec, text in rows:
            lines += [".TP", _term(spec), escape(text)]
    lines.append(".SH EXAMPLES")
    for example, text in EXAMPLES:
        lines += _tagged(f"\\fB{escape(example)}\\fR", text)
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS:
        lines += _tagged(f"\\fB{code}\\fR", text)
    lines.append(".SH SIGNALS")
    for names, text in SIGNALS:
        lines += _tagged(f"\\fB{names}\\fR", text)
    lines.append(".SH ENVIRONMENT")
    for names, text in ENVIRONMENT:
        lines += _tagged(f"\\fB{escape(names)}\\fR", text)
    lines += [".SH SEE ALSO", SEE_ALSO]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
