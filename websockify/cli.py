"""The command line: click parses, config validates, app runs. Nothing else here.

Compatible with upstream websockify: the forms in USAGE_FORMS. Options may
follow the positional arguments, as upstream's optparse allows. Under systemd
socket activation the source address may be left out.

Every option names its help section (one of SECTIONS) where it is declared;
--help prints one section per group, and websockify/manpage.py renders the
same records as websockify(1).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence, TypeVar

import click

from . import __version__
from . import config as defaults
from .config import build_config
from .errors import ConfigError
from .service.activation import activated

USAGE_FORMS = (
    "[options] [SOURCE_ADDR:]SOURCE_PORT TARGET_ADDR:TARGET_PORT",
    "[options] --unix-target=FILE [SOURCE_ADDR:]SOURCE_PORT",
    "[options] --token-plugin=CLASS [SOURCE_ADDR:]SOURCE_PORT",
    "[options] [SOURCE_ADDR:]SOURCE_PORT -- WRAP_COMMAND_LINE",
    "[options] --unix-listen=FILE | --inetd  TARGET_ADDR:TARGET_PORT",
)

DESCRIPTION = """\
Bridge WebSocket clients to a TCP or Unix-socket service, or wrap a program so that its listening port \
is served through the bridge.

websockify listens on [SOURCE_ADDR:]SOURCE_PORT (every IPv4 address when SOURCE_ADDR is left out, every \
address with -6) and relays each WebSocket client over a connection of its own to the target: \
TARGET_ADDR:TARGET_PORT, the Unix socket of --unix-target, the address --token-plugin finds for the \
client's token, or the program started after --, whose listening on SOURCE_PORT is moved to a private \
port. The same port takes TLS clients with --cert, and serves files with --web.

With --unix-listen, --inetd or systemd socket activation, the socket to listen on is given, and \
SOURCE_PORT is only the port a wrapped program binds."""

# (command line, what it does): the help's epilog shows the commands, websockify(1) both.
EXAMPLES = (
    ("websockify 6080 localhost:5900",
     "Serve the VNC server on localhost:5900 to WebSocket clients connecting to port 6080."),
    ("websockify --web /usr/share/novnc [::]:6080 vnchost:5901",
     "Also serve noVNC's pages from /usr/share/novnc, on every IPv6 and IPv4 address."),
    ("websockify --unix-target /run/app.sock 6080",
     "Relay to the Unix socket /run/app.sock."),
    ("websockify 5901 -- vncserver :1",
     ("Start vncserver :1, move the port it listens on (5901) to a private one, and serve WebSocket "
      "clients on 5901.")),
    ("websockify --cert server.pem --ssl-only 6443 localhost:5900",
     "wss:// only, with the certificate and its key in server.pem."),
    ("websockify --token-plugin TokenFile --token-source /etc/websockify/tokens 6080",
     "Each client names its target with ?token=NAME; the file has lines like 'NAME: vnchost:5901'."),
)

USAGE_EPILOG = "\b\nExamples:\n" + "".join(f"  {line}\n" for line, _ in EXAMPLES)

LISTENING = "Listening"
TARGET = "Target"
WRAPPING = "Wrapping a program (-- COMMAND)"
TLS = "TLS"
WEB = "Web and browsers"
TOKENS_AUTH = "Tokens and authentication"
LIMITS = "Limits"
LIFETIME = "Lifetime"
SERVICE = "Service"
WORKERS = "Workers"
LOGGING = "Logging and recording"
OTHER = "Other"
# The order --help and websockify(1) show them in. Limits, Lifetime, TLS and Logging
# are config.py's dataclasses (Limits, Lifetime, TlsSettings, LogSettings).
SECTIONS = (LISTENING, TARGET, WRAPPING, TLS, WEB, TOKENS_AUTH, LIMITS, LIFETIME, SERVICE, WORKERS, LOGGING, OTHER)
_COL_MAX = 30  # click's widest option column; longer options put their help on the next line

F = TypeVar("F", bound=Callable[..., Any])


class _Option(click.Option):
    """An option of one help section. `show_default` True shows the default value;
    a string says in words what happens without the option."""

    def __init__(self, *args: Any, section: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.section = section

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        # Only click's left column is kept: its right one adds ranges ("x>=0") and
        # cannot show a number as "10" rather than "10.0".
        record = super().get_help_record(ctx)
        if record is None:
            return None
        text = self.help or ""
        default = self.default_text()
        return record[0], f"{text}  [default: {default}]" if default else text

    def default_text(self) -> str | None:
        if isinstance(self.show_default, str):
            return self.show_default
        # No default is None in click 8.1, a sentinel in later versions.
        if not self.show_default or not isinstance(self.default, (str, int, float)):
            return None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


def _option(section: str, *decls: str, **attrs: Any) -> Callable[[F], F]:
    return click.option(*decls, cls=_Option, section=section, **attrs)


def _help_sections(command: click.Command, ctx: click.Context) -> list[tuple[str, list[tuple[str, str]]]]:
    grouped: dict[str, list[tuple[str, str]]] = {title: [] for title in SECTIONS}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None and isinstance(param, click.Option):  # click's --help, --version: OTHER
            grouped[getattr(param, "section", OTHER)].append(record)
    return [(title, rows) for title, rows in grouped.items() if rows]


class _Command(click.Command):
    """Splits off `-- COMMAND ARGS...` before click sees it: the command's own
    options must not be parsed as ours. Prints the options by section."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["wrap_command"] = tuple(args[split + 1:])
            if not ctx.meta["wrap_command"]:
                raise click.UsageError("'--' must be followed by the command to wrap")
            args = args[:split]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = _help_sections(self, ctx)
        width = min(max(len(term) for _, rows in sections for term, _ in rows), _COL_MAX)
        for title, rows in sections:
            own = min(max(len(term) for term, _ in rows), _COL_MAX)
            with formatter.section(title):
                # write_dl sizes the column to its own rows: the extra spacing gives
                # every section the same column, so the help reads as one table.
                formatter.write_dl(rows, col_max=_COL_MAX, col_spacing=2 + width - own)


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help=DESCRIPTION,
    epilog=USAGE_EPILOG,
)
@click.argument("arguments", nargs=-1,
                metavar="[SOURCE_ADDR:]SOURCE_PORT [TARGET_ADDR:TARGET_PORT | -- COMMAND ARGS...]")
# -- Listening
@_option(LISTENING, "-6", "--prefer-ipv6", is_flag=True,
         help="Listen on [::] (IPv6 and IPv4) instead of 0.0.0.0 when the source address has no host; "
              "with a host name, take its IPv6 address first.")
@_option(LISTENING, "--unix-listen", metavar="FILE",
         help="Listen on the Unix socket FILE instead of a TCP port; a socket file that nothing listens on "
              "any more is replaced.")
@_option(LISTENING, "--unix-listen-mode", metavar="MODE", default=defaults.DEFAULT_UNIX_LISTEN_MODE,
         show_default=True, help="Permissions of the --unix-listen socket file, in octal.")
@_option(LISTENING, "--inetd", is_flag=True,
         help="Take the listening socket from standard input, as inetd passes it in its wait mode.")
@_option(LISTENING, "--proxy-protocol", is_flag=True,
         help="Every connection starts with a load balancer's PROXY protocol header (v1 or v2, as HAProxy, "
              "nginx, AWS NLB and Envoy send it): the client's address comes from it. Connections from "
              "outside --trusted-proxies, or without a valid header, are closed.")
@_option(LISTENING, "--trusted-proxies", metavar="LIST", default=",".join(defaults.DEFAULT_TRUSTED_PROXIES),
         show_default=True,
         help="Addresses or networks (CIDR, separated by commas or spaces) of the load balancers and reverse "
              "proxies whose word on the client's address is taken.")
@_option(LISTENING, "--forwarded-header", type=click.Choice(defaults.FORWARDED_HEADERS), default="none",
         show_default=True,
         help="The header your trusted reverse proxies name the client in (nginx's X-Forwarded-For, "
              "RFC 7239's Forwarded, X-Real-IP): the right-most address in it outside --trusted-proxies is "
              "the client. Name only one your proxy sets: a client's own one would pass through.")
# -- Target
@_option(TARGET, "--unix-target", metavar="FILE",
         help="Connect to the Unix socket FILE instead of TARGET_ADDR:TARGET_PORT.")
@_option(TARGET, "--target-proxy-protocol", type=click.Choice(defaults.TARGET_PROXY_PROTOCOLS),
         help="Begin each connection to the target with a PROXY protocol header naming the client (v1 text or "
              "v2 binary, for HAProxy-aware targets): the target sees the real client's address.")
@_option(TARGET, "--ssl-target", is_flag=True,
         help="Connect to the target over TLS, verifying its certificate against the system's CAs "
              "(or SSL_CERT_FILE) and its host name.")
# -- Wrapping
@_option(WRAPPING, "--wrap-mode", type=click.Choice(defaults.WRAP_MODES), default=defaults.DEFAULT_WRAP_MODE,
         show_default=True,
         help="When the wrapped COMMAND exits: exit (websockify exits with its status), ignore (keep running, "
              "refusing clients), or respawn (start it again after 1s, doubling up to 30s while it keeps "
              "failing quickly).")
@_option(WRAPPING, "--grace-period", "grace_period_s", type=click.FloatRange(min=0),
         default=defaults.DEFAULT_GRACE_PERIOD_S, show_default=True, metavar="SECONDS",
         help="When websockify is stopped (SIGTERM, SIGINT), how long the wrapped program may take to exit "
              "before it is killed with SIGKILL.")
# -- TLS
@_option(TLS, "--cert", metavar="FILE",
         help="TLS certificate chain, PEM, which may hold the key too: the listening port then takes wss:// "
              "and https:// clients beside plain ones. Read again on SIGHUP.")
@_option(TLS, "--key", metavar="FILE", help="TLS private key, PEM, when it is not in the --cert file.")
@_option(TLS, "--key-password", metavar="PASSWORD",
         help="Password of an encrypted key (other users can read it in the process list).")
@_option(TLS, "--ssl-only", is_flag=True,
         help=f"Refuse plain connections (plain HTTP requests get a 403). Without --cert, the certificate is "
              f"{defaults.DEFAULT_CERT} in the working directory, upstream's default.")
@_option(TLS, "--ssl-ciphers", metavar="LIST", show_default="Python's ssl defaults",
         help="OpenSSL cipher list for TLS 1.2 and older; TLS 1.3's suites are not affected.")
@_option(TLS, "--ssl-version", type=click.Choice(defaults.SSL_VERSIONS), default=defaults.DEFAULT_SSL_VERSION,
         show_default=True,
         help="Oldest TLS version a client may use. default is Python's minimum, TLS 1.2 (a system-wide "
              "OpenSSL policy may raise it); under OpenSSL 3, tlsv1_1 also needs "
              "--ssl-ciphers 'DEFAULT:@SECLEVEL=0'.")
@_option(TLS, "--verify-client", is_flag=True,
         help=f"Require a client certificate signed by a --cafile CA on TLS connections. Without --cert, the "
              f"certificate is {defaults.DEFAULT_CERT} in the working directory, as with --ssl-only.")
@_option(TLS, "--cafile", metavar="FILE", show_default="the system's CA certificates",
         help="CA certificates (PEM) that --verify-client accepts client certificates from.")
# -- Web and browsers
@_option(WEB, "--web", metavar="DIR",
         type=click.Path(exists=True, file_okay=False, readable=True, resolve_path=True),
         help="Serve the files under DIR to HTTP GET and HEAD requests on the same port (index.html for a "
              "directory, never a listing).")
@_option(WEB, "--file-only", is_flag=True,
         help="Accepted for upstream's command lines: directories are never listed anyway.")
@_option(WEB, "--allowed-origins", metavar="LIST",
         show_default="the page's own origin with --web, any origin without",
         help="Origins (scheme://host[:port], separated by commas or spaces) whose pages may open a "
              "WebSocket; * for any. Clients that send no Origin header (not browsers) are always let in.")
@_option(WEB, "--allowed-hosts", metavar="LIST", default="*", show_default=True,
         help="Host names or addresses (no port; separated by commas or spaces; .example.com for every name "
              "under it) that requests may carry in their Host header; others get 421. * for any. Set it "
              "on a LAN gateway, against DNS rebinding.")
@_option(WEB, "--hixie76", is_flag=True,
         help="Also accept Hixie-76 clients (a WebSocket draft browsers dropped in 2011), their data "
              "base64-encoded as the first websockify relayed it.")
# -- Tokens and authentication
@_option(TOKENS_AUTH, "--token-plugin", metavar="CLASS",
         help="Find each client's target from its token (?token= in the URL, or see --host-token) with a "
              "plugin: TokenFile, ReadOnlyTokenFile, TokenFileName, UnixDomainSocketDirectory, JSONTokenApi, "
              "JWTTokenApi, TokenRedis, or your package.module.Class.")
@_option(TOKENS_AUTH, "--token-source", metavar="ARG",
         help="The token plugin's argument: for TokenFile, a file of 'TOKEN: HOST:PORT' lines or a "
              "directory of such files.")
@_option(TOKENS_AUTH, "--host-token", is_flag=True,
         help="Take the token from the Host header (without its port) instead of ?token= in the URL.")
@_option(TOKENS_AUTH, "--target-config", metavar="FILE",
         help="Upstream's older spelling of --token-plugin TokenFile --token-source FILE.")
@_option(TOKENS_AUTH, "--auth-plugin", metavar="CLASS",
         help="Check each WebSocket request with a plugin: BasicHTTPAuth, ExpectOrigin, ClientCertCNAuth, "
              "or your package.module.Class.")
@_option(TOKENS_AUTH, "--auth-source", metavar="ARG",
         help="The auth plugin's argument: USER:PASSWORD for BasicHTTPAuth, the allowed origins for "
              "ExpectOrigin, the allowed certificate common names for ClientCertCNAuth (separated by spaces).")
@_option(TOKENS_AUTH, "--web-auth", is_flag=True,
         help="Check requests for --web files with the auth plugin too, not only WebSocket requests.")
# -- Limits
@_option(LIMITS, "--max-connections", type=click.IntRange(min=1), default=defaults.DEFAULT_MAX_CONNECTIONS,
         show_default=True, metavar="N",
         help="Connections one process serves at once, in any phase (each --workers process has its own); "
              "past it, plain clients get HTTP 503 and TLS ones are closed.")
@_option(LIMITS, "--max-connections-per-ip", type=click.IntRange(min=0),
         default=defaults.DEFAULT_MAX_CONNECTIONS_PER_IP, show_default=True, metavar="N",
         help="Connections from one client address (an IPv6 one: its /64) at once; past it, closed at once "
              "without taking a place of --max-connections. 0: no cap, because clients behind one reverse "
              "proxy share its address; a gateway that clients reach directly should set one (say 64).")
@_option(LIMITS, "--max-header-bytes", type=click.IntRange(min=1024), default=defaults.DEFAULT_MAX_HEADER_BYTES,
         show_default=True, metavar="BYTES",
         help="Largest request head (request line and headers) a client may send; at least 1024.")
@_option(LIMITS, "--max-headers", type=click.IntRange(min=1), default=defaults.DEFAULT_MAX_HEADERS,
         show_default=True, metavar="N", help="Most header lines in a request.")
@_option(LIMITS, "--max-message-size", "max_message_bytes", type=click.IntRange(min=defaults.MIN_MAX_MESSAGE_BYTES),
         default=defaults.DEFAULT_MAX_MESSAGE_BYTES, show_default=True, metavar="BYTES",
         help=f"Largest WebSocket message a client may send, at least {defaults.MIN_MAX_MESSAGE_BYTES}; a "
              f"larger one closes the connection with code 1009.")
@_option(LIMITS, "--handshake-timeout", "handshake_timeout_s", type=click.FloatRange(min=0, min_open=True),
         default=defaults.DEFAULT_HANDSHAKE_TIMEOUT_S, show_default=True, metavar="SECONDS",
         help="Time a client has to complete TLS, its request, authentication and the token lookup; then "
              "it is dropped.")
# -- Lifetime
@_option(LIFETIME, "--heartbeat", "heartbeat_s", type=click.FloatRange(min=0), default=0, show_default=True,
         metavar="SECONDS",
         help="Send each client a ping every SECONDS, and drop one from which nothing came in the SECONDS "
              "after a ping; 0: no pings.")
@_option(LIFETIME, "--idle-timeout", "idle_timeout_s", type=click.FloatRange(min=0), default=0, show_default=True,
         metavar="SECONDS",
         help="Exit once no WebSocket session has been open for SECONDS, counted from start or from the end "
              "of the last session; 0: never.")
@_option(LIFETIME, "--timeout", "timeout_s", type=click.FloatRange(min=0), default=0, show_default=True,
         metavar="SECONDS",
         help="SECONDS after start, stop accepting connections, and exit when the last session ends; "
              "0: never.")
@_option(LIFETIME, "--run-once", is_flag=True, help="Exit when the first WebSocket session ends.")
@_option(LIFETIME, "--stall-timeout", "stall_timeout_s", type=click.FloatRange(min=0), metavar="SECONDS",
         show_default="60, or two --heartbeat intervals",
         help="Close a session when one side has stopped reading and nothing has moved either way for "
              "SECONDS; 0: never.")
# -- Service
@_option(SERVICE, "-D", "--daemon", is_flag=True,
         help="Run in the background, in /, without a terminal (log with --log-file or --syslog). The "
              "command returns once websockify listens, or fails with its start-up error.")
@_option(SERVICE, "--pid-file", metavar="FILE",
         help="Write the process id to FILE once listening, and remove it at exit; refuse to start while "
              "FILE names a running websockify.")
@_option(SERVICE, "--metrics", metavar="[HOST:]PORT",
         help="Serve Prometheus metrics at /metrics, and /healthz and /readyz for probes and load balancers, on "
              "a listener of their own (HOST 127.0.0.1 when not given; 0.0.0.0 for a Kubernetes probe).")
# -- Workers
@_option(WORKERS, "--workers", metavar="N|auto", default="1", show_default=True,
         help="Processes serving clients on the same listening socket, 1 to 256; auto: one per CPU this "
              "process may use (its CPU affinity and cgroup quota).")
# -- Logging and recording
@_option(LOGGING, "-v", "--verbose", is_flag=True, help="Log at DEBUG level: every step of every connection.")
@_option(LOGGING, "--traffic", is_flag=True,
         help="Log the direction and size of every relayed message (never its content).")
@_option(LOGGING, "--log-format", type=click.Choice(defaults.LOG_FORMATS), default="text", show_default=True,
         help="json: one JSON object per line on every log destination, with the session's fields as keys "
              "(docs/logging.md).")
@_option(LOGGING, "--log-file", metavar="FILE",
         help="Also log to FILE, appending; it is reopened when logrotate moves it away.")
@_option(LOGGING, "--syslog", metavar="ADDR",
         help="Also log to syslog (RFC 5424): ADDR is a socket path such as /dev/log, or HOST:PORT over "
              "UDP. Facility DAEMON with -D, else USER.")
@_option(LOGGING, "--legacy-syslog", is_flag=True,
         help="With --syslog: BSD syslog lines (RFC 3164) instead of RFC 5424.")
@_option(LOGGING, "--record", metavar="FILE",
         help="Record each WebSocket session to a file of its own, FILE.1, FILE.2, ... (mode 0600): every "
              "relayed message with its direction and time in ms, in the JavaScript format noVNC's "
              "player reads.")
@click.version_option(__version__, "--version")
@click.pass_context
def command(ctx: click.Context, /, arguments: tuple[str, ...], **options: Any) -> int:
    """Build the Config and run it."""
    from .app import run  # imported late: --help must not pay for asyncio

    config = build_config(arguments=arguments, wrap_command=ctx.meta.get("wrap_command", ()),
                          socket_activated=activated(), **options)
    return run(config)


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section title, [(option, help text)])], as --help prints them: for websockify(1)."""
    ctx = click.Context(command, info_name="websockify", **command.context_settings)
    return _help_sections(command, ctx)


def _usage_error(message: str) -> int:
    """One line on stderr, and where to read more: the arguments were wrong, not the system."""
    print(f"websockify: error: {message}{'' if message.endswith(('.', '?')) else '.'} Try 'websockify --help'.",
          file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one line on bad usage, exit code 2, never a traceback."""
    try:
        code = command.main(args=list(argv) if argv is not None else None,
                            prog_name="websockify", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code = _usage_error(exc.format_message())
    except ConfigError as exc:  # from build_config: app.run reports its own errors
        code = _usage_error(str(exc))
    except click.exceptions.Abort:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
