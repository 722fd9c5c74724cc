"""The command line: click parses, config validates, app runs. Nothing else here.

Compatible with upstream websockify:

    websockify [options] [source_addr:]source_port target_addr:target_port
    websockify [options] --unix-target=FILE [source_addr:]source_port
    websockify [options] --token-plugin=CLASS [source_addr:]source_port
    websockify [options] [source_addr:]source_port -- WRAP_COMMAND_LINE
    websockify [options] --unix-listen=FILE | --inetd  target_addr:target_port

Options may follow the positional arguments, as upstream's optparse allows.
Under systemd socket activation the source address may be left out.
"""
from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

import click

from . import __version__
from . import config as defaults
from .config import build_config
from .errors import ConfigError
from .service.activation import activated

USAGE_EPILOG = """\b
Examples:
  websockify 6080 localhost:5900
  websockify --web /usr/share/novnc [::]:6080 vnchost:5901
  websockify --unix-target /run/app.sock 6080
  websockify 5901 -- vncserver :1
"""


class _Command(click.Command):
    """Splits off `-- COMMAND ARGS...` before click sees it: the command's own
    options must not be parsed as ours."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["wrap_command"] = tuple(args[split + 1:])
            if not ctx.meta["wrap_command"]:
                raise click.UsageError("'--' must be followed by the command to wrap")
            args = args[:split]
        return super().parse_args(ctx, args)


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=USAGE_EPILOG,
)
@click.argument("arguments", nargs=-1,
                metavar="[SOURCE_ADDR:]SOURCE_PORT [TARGET_ADDR:TARGET_PORT | -- COMMAND ARGS...]")
@click.option("-v", "--verbose", is_flag=True, help="Log every connection step (DEBUG).")
@click.option("-6", "--prefer-ipv6", is_flag=True,
              help="Listen on IPv6 ([::], which also takes IPv4) when no source address is given.")
@click.option("--unix-target", metavar="FILE", help="Connect to the Unix socket FILE instead of TCP.")
@click.option("--web", metavar="DIR",
              type=click.Path(exists=True, file_okay=False, readable=True, resolve_path=True),
              help="Serve the static files in DIR over plain HTTP on the same port.")
@click.option("--wrap-mode", type=click.Choice(defaults.WRAP_MODES), default=defaults.DEFAULT_WRAP_MODE,
              show_default=True,
              help="What to do when the wrapped command exits.")
@click.option("--grace-period", "grace_period_s", type=click.FloatRange(min=0),
              default=defaults.DEFAULT_GRACE_PERIOD_S, show_default=True,
              metavar="SECONDS",
              help="On SIGTERM/SIGINT, how long the wrapped program may take to exit before SIGKILL.")
@click.option("--handshake-timeout", "handshake_timeout_s", type=click.FloatRange(min=0, min_open=True),
              default=defaults.DEFAULT_HANDSHAKE_TIMEOUT_S, show_default=True, metavar="SECONDS",
              help="Drop a client that has not completed TLS, its request and authentication by then.")
@click.option("--cert", metavar="FILE", help="TLS certificate (PEM; may hold the key too): enables wss:// "
              "and https:// on the same port. Reloaded on SIGHUP.")
@click.option("--key", metavar="FILE", help="TLS private key, if not in --cert.")
@click.option("--key-password", metavar="PASSWORD", help="Password of an encrypted key.")
@click.option("--ssl-only", is_flag=True, help="Refuse plain (non-TLS) connections.")
@click.option("--ssl-ciphers", metavar="LIST", help="OpenSSL cipher list (TLS 1.2 and older).")
@click.option("--ssl-version", type=click.Choice(defaults.SSL_VERSIONS), default=defaults.DEFAULT_SSL_VERSION,
              show_default=True, help="Minimum TLS version accepted.")
@click.option("--verify-client", is_flag=True, help="Require a client certificate on TLS connections.")
@click.option("--cafile", metavar="FILE", help="CA certificates for --verify-client.")
@click.option("--ssl-target", is_flag=True, help="Connect to the target over TLS (verified).")
@click.option("--web-auth", is_flag=True, help="Run the auth plugin for web files too.")
@click.option("--file-only", is_flag=True, help="Never list directories (always the case here).")
@click.option("--hixie76", is_flag=True,
              help="Also accept legacy Hixie-76 clients (base64 in 0x00..0xFF frames).")
@click.option("--record", metavar="FILE", help="Record each session to FILE.N (see README).")
@click.option("--auth-plugin", metavar="CLASS", help="Authenticate clients with a plugin.")
@click.option("--auth-source", metavar="ARG", help="Argument passed to the auth plugin.")
@click.option("--token-plugin", metavar="CLASS", help="Choose the target per client by token.")
@click.option("--token-source", metavar="ARG", help="Argument passed to the token plugin.")
@click.option("--host-token", is_flag=True, help="Take the token from the Host header instead of ?token=.")
@click.option("--target-config", metavar="FILE", help="A token file (deprecated: --token-plugin TokenFile "
              "--token-source FILE).")
@click.option("--allowed-origins", metavar="LIST",
              help="Browser origins (https://host[:port], comma-separated) that may open a WebSocket; "
                   "* for any. Default: the same origin with --web, any without.")
@click.option("--max-message-size", "max_message_bytes", type=click.IntRange(min=defaults.MIN_MAX_MESSAGE_BYTES),
              default=defaults.DEFAULT_MAX_MESSAGE_BYTES, show_default=True, metavar="BYTES",
              help="Largest WebSocket message accepted from a client (larger: close 1009).")
@click.option("--max-connections", type=click.IntRange(min=1), default=defaults.DEFAULT_MAX_CONNECTIONS,
              show_default=True, metavar="N", help="Clients served at once; more get HTTP 503.")
@click.option("--max-connections-per-ip", type=click.IntRange(min=0),
              default=defaults.DEFAULT_MAX_CONNECTIONS_PER_IP, show_default=True, metavar="N",
              help="Clients served at once from one address (0: no cap); more get HTTP 503.")
@click.option("--max-header-bytes", type=click.IntRange(min=1024), default=defaults.DEFAULT_MAX_HEADER_BYTES,
              show_default=True, metavar="BYTES", help="Largest request head (request line and headers).")
@click.option("--max-headers", type=click.IntRange(min=1), default=defaults.DEFAULT_MAX_HEADERS,
              show_default=True, metavar="N", help="Most header lines in a request.")
@click.option("--unix-listen", metavar="FILE", help="Listen on the Unix socket FILE instead of TCP.")
@click.option("--unix-listen-mode", metavar="MODE", default=defaults.DEFAULT_UNIX_LISTEN_MODE, show_default=True,
              help="Permissions of the --unix-listen socket (octal).")
@click.option("--inetd", is_flag=True, help="The listening socket is on standard input (inetd's wait mode).")
@click.option("-D", "--daemon", is_flag=True,
              help="Run in the background; the command returns once websockify listens.")
@click.option("--pid-file", metavar="FILE", help="Write the process id to FILE once listening.")
@click.option("--log-file", metavar="FILE", help="Also log to FILE (reopened when logrotate moves it).")
@click.option("--syslog", metavar="ADDR", help="Also log to syslog: a socket path (/dev/log) or HOST:PORT (UDP).")
@click.option("--legacy-syslog", is_flag=True, help="BSD syslog lines instead of RFC 5424.")
@click.option("--traffic", is_flag=True, help="Log a line for every relayed message (debugging).")
@click.option("--heartbeat", "heartbeat_s", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="Ping a client idle for SECONDS; close it if it does not answer within SECONDS.")
@click.option("--idle-timeout", "idle_timeout_s", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="Exit after SECONDS with no WebSocket session open.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="Stop accepting SECONDS after start; exit when the last session ends.")
@click.option("--run-once", is_flag=True, help="Exit after the first WebSocket session ends.")
@click.option("--workers", metavar="N|auto", default="1", show_default=True,
              help="Processes serving clients on the same port; auto: one per available CPU.")
@click.version_option(__version__, "--version")
@click.pass_context
def command(ctx: click.Context, /, arguments: tuple[str, ...], **options: Any) -> int:
    """Bridge WebSocket clients to a TCP or Unix-socket service, or wrap a program
    so that its listening port is served through the bridge."""
    from .app import run  # imported late: --help must not pay for asyncio

    config = build_config(arguments=arguments, wrap_command=ctx.meta.get("wrap_command", ()),
                          socket_activated=activated(), **options)
    return run(config)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console entry point: one line on bad usage, exit code 2, never a traceback."""
    try:
        code = command.main(args=list(argv) if argv is not None else None,
                            prog_name="websockify", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        print(f"websockify: error: {exc.format_message()}", file=sys.stderr)
        code = 2
    except ConfigError as exc:
        print(f"websockify: error: {exc}", file=sys.stderr)
        code = 2
    except click.exceptions.Abort:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
