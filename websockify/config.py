"""Validated settings. No I/O here: the single source of defaults and choices.

`cli.py` turns the command line into a `Config` with `build_config`, whose
keyword parameters are exactly the command line's options (a test holds the
two together); everything below it only reads the frozen dataclasses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast, get_args

from .access_lists import DEFAULT_TRUSTED_PROXIES as DEFAULT_TRUSTED_PROXIES  # the default, for cli
from .access_lists import IPNetwork, parse_hosts, parse_origins, parse_trusted_proxies
from .addresses import Target as Target  # re-exported: settings hold addresses
from .addresses import TcpAddress as TcpAddress
from .addresses import TooManyColons, parse_listen, parse_metrics_address, parse_target
from .addresses import UnixAddress as UnixAddress
from .errors import ConfigError

WrapMode = Literal["exit", "ignore", "respawn"]
WRAP_MODES: tuple[str, ...] = get_args(WrapMode)
SslVersion = Literal["default", "tlsv1_1", "tlsv1_2", "tlsv1_3"]
SSL_VERSIONS: tuple[str, ...] = get_args(SslVersion)
# The header a trusted reverse proxy names the client in; none by default, since a proxy
# that does not set the header passes a client's own one through.
ForwardedHeader = Literal["none", "x-forwarded-for", "forwarded", "x-real-ip"]
FORWARDED_HEADERS: tuple[str, ...] = get_args(ForwardedHeader)
TargetProxyProtocol = Literal["v1", "v2"]  # the PROXY header sent to each target, naming the client
TARGET_PROXY_PROTOCOLS: tuple[str, ...] = get_args(TargetProxyProtocol)
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)

DEFAULT_WRAP_MODE: WrapMode = "exit"
DEFAULT_SSL_VERSION: SslVersion = "default"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
MIN_MAX_MESSAGE_BYTES = 125  # a control frame's payload must always fit
DEFAULT_GRACE_PERIOD_S = 10.0
DEFAULT_HANDSHAKE_TIMEOUT_S = 10.0
# Connections (in any phase) one process serves at once; past it new clients get
# 503. With the per-connection bound below, 4096 clients cost at most ~10 GiB in
# the worst case and about 40 MiB when they are ordinary VNC sessions.
DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_MAX_CONNECTIONS_PER_IP = 0  # 0 = no cap: clients behind one reverse proxy share an address
# A request head: browsers and upstream's clients send well under 8 KiB.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_HEADERS = 100
# Write-buffer high-water mark of each leg. Reading from the other leg pauses
# above it, so it is the main term of the per-connection memory bound.
DEFAULT_WRITE_BUFFER_BYTES = 256 * 1024
# Upstream's default certificate name, used when TLS is asked for without --cert.
DEFAULT_CERT = "self.pem"
DEFAULT_UNIX_LISTEN_MODE = "0600"


@dataclass(frozen=True)
class TlsSettings:
    """The listening side's TLS. `cert` None means: plain connections only."""
    cert: str | None = None
    key: str | None = None
    key_password: str | None = None
    ssl_only: bool = False
    ciphers: str | None = None
    min_version: SslVersion = DEFAULT_SSL_VERSION
    verify_client: bool = False
    cafile: str | None = None
    # The option (--ssl-only, --verify-client) that made `cert` DEFAULT_CERT, none
    # being given: an error about the file must say why websockify looked there.
    default_cert_for: str | None = None

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class Limits:
    """What one process accepts from clients, whatever they send."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S


@dataclass(frozen=True)
class LogSettings:
    verbose: bool = False
    log_file: str | None = None
    syslog: str | None = None
    legacy_syslog: bool = False
    daemon: bool = False  # syslog facility DAEMON instead of USER
    traffic: bool = False
    format: LogFormat = "text"  # json: one object per line (docs/logging.md)


@dataclass(frozen=True)
class Lifetime:
    """When websockify ends by itself, and how idle clients are kept alive. 0 = never."""
    heartbeat_s: float = 0.0
    idle_timeout_s: float = 0.0
    timeout_s: float = 0.0
    run_once: bool = False
    stall_timeout_s: float | None = None  # None: the relay's default (proxy/flow.py); 0: never


@dataclass(frozen=True)
class Config:
    # None when the listening socket comes from --unix-listen, --inetd or systemd;
    # with wrapping it is then the port the program binds.
    listen: TcpAddress | None
    target: Target | None = None
    wrap_command: tuple[str, ...] = ()
    wrap_mode: WrapMode = DEFAULT_WRAP_MODE
    token_plugin: str | None = None
    token_source: str | None = None
    host_token: bool = False
    web_dir: str | None = None
    prefer_ipv6: bool = False
    unix_listen: str | None = None
    unix_listen_mode: int = int(DEFAULT_UNIX_LISTEN_MODE, 8)
    inetd: bool = False
    daemon: bool = False
    pid_file: str | None = None
    logs: LogSettings = LogSettings()
    lifetime: Lifetime = Lifetime()
    limits: Limits = Limits()
    tls: TlsSettings = TlsSettings()
    ssl_target: bool = False
    web_auth: bool = False
    auth_plugin: str | None = None
    auth_source: str | None = None
    # None: same origin only when --web serves the page, any origin otherwise.
    allowed_origins: tuple[str, ...] | None = None
    allowed_hosts: tuple[str, ...] = ("*",)  # the Host names (no port) requests may carry
    proxy_protocol: bool = False  # every connection starts with a load balancer's PROXY header
    trusted_proxies: tuple[IPNetwork, ...] = parse_trusted_proxies(",".join(DEFAULT_TRUSTED_PROXIES))
    forwarded_header: ForwardedHeader = "none"
    target_proxy_protocol: TargetProxyProtocol | None = None
    metrics: TcpAddress | None = None  # the listener of /metrics, /healthz and /readyz
    record: str | None = None
    hixie76: bool = False
    write_buffer_bytes: int = DEFAULT_WRITE_BUFFER_BYTES
    close_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    listen_backlog: int = 1024
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S
    workers: int = 1  # processes serving clients; 0: one per available CPU
    working_dir: str | None = None  # where relative paths were given; the wrapped program runs there

    @property
    def verbose(self) -> bool:
        return self.logs.verbose

    @property
    def max_message_bytes(self) -> int:
        return self.limits.max_message_bytes

    @property
    def handshake_timeout_s(self) -> float:
        return self.limits.handshake_timeout_s


def _positive(value: float, option: str, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{option}: must be {'zero or more' if allow_zero else 'positive'}")


def split_positionals(arguments: tuple[str, ...], *, wrapping: bool, other_target: bool,
                      listen_elsewhere: bool) -> tuple[str | None, str | None]:
    """(source, target) from the positional arguments.

    Normally the source comes first and is required. When the listening socket
    comes from --unix-listen, --inetd or systemd, a lone argument is the target;
    with wrapping or another kind of target it is the source (the port the
    wrapped program binds, or one that must match an inherited socket).
    """
    needs_target = not (wrapping or other_target)
    if listen_elsewhere and needs_target and len(arguments) == 1:
        return None, arguments[0]
    if not arguments:
        if listen_elsewhere:
            return None, None
        raise ConfigError("missing source address: give [SOURCE_ADDR:]SOURCE_PORT")
    if len(arguments) > (2 if needs_target else 1):
        extra = arguments[2:] if needs_target else arguments[1:]
        raise ConfigError(f"too many arguments: {' '.join(extra)}")
    return arguments[0], arguments[1] if len(arguments) > 1 else None


def build_config(
    *,
    arguments: tuple[str, ...] = (),
    wrap_command: tuple[str, ...] = (),
    socket_activated: bool = False,
    verbose: bool = False,
    prefer_ipv6: bool = False,
    unix_target: str | None = None,
    unix_listen: str | None = None,
    unix_listen_mode: str = DEFAULT_UNIX_LISTEN_MODE,
    inetd: bool = False,
    web: str | None = None,
    wrap_mode: str = DEFAULT_WRAP_MODE,
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S,
    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S,
    cert: str | None = None,
    key: str | None = None,
    key_password: str | None = None,
    ssl_only: bool = False,
    ssl_ciphers: str | None = None,
    ssl_version: str = DEFAULT_SSL_VERSION,
    verify_client: bool = False,
    cafile: str | None = None,
    ssl_target: bool = False,
    web_auth: bool = False,
    file_only: bool = False,
    hixie76: bool = False,
    record: str | None = None,
    auth_plugin: str | None = None,
    auth_source: str | None = None,
    token_plugin: str | None = None,
    token_source: str | None = None,
    host_token: bool = False,
    target_config: str | None = None,
    allowed_origins: str | None = None,
    allowed_hosts: str = "*",
    proxy_protocol: bool = False,
    trusted_proxies: str = ",".join(DEFAULT_TRUSTED_PROXIES),
    forwarded_header: str = "none",
    target_proxy_protocol: str | None = None,
    metrics: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_headers: int = DEFAULT_MAX_HEADERS,
    daemon: bool = False,
    pid_file: str | None = None,
    log_file: str | None = None,
    syslog: str | None = None,
    legacy_syslog: bool = False,
    traffic: bool = False,
    log_format: str = "text",
    heartbeat_s: float = 0.0,
    idle_timeout_s: float = 0.0,
    timeout_s: float = 0.0,
    run_once: bool = False,
    stall_timeout_s: float | None = None,
    workers: str = "1",
) -> Config:
    """Check the combination of arguments the way upstream does and build a Config.

    `file_only` is accepted for upstream's command lines: directories are never listed.
    """
    del file_only
    # Each settings group is checked by its own function, in the order the checks always
    # ran (--unix-listen-mode and --allowed-origins last, in the Config below): when
    # several options are wrong, the same one is named first.
    token_plugin, token_source = _tokens(token_plugin, token_source, host_token, target_config)
    _check_listening(unix_listen, inetd)
    listen, target = _source_and_target(
        arguments, wrap_command=wrap_command, unix_target=unix_target, token_plugin=token_plugin,
        unix_listen=unix_listen, inetd=inetd, socket_activated=socket_activated)
    checked_wrap_mode = _wrapping(wrap_command, wrap_mode, grace_period_s, listen,
                                  port_given_elsewhere=inetd or socket_activated)
    limits = _limits(max_connections=max_connections, max_connections_per_ip=max_connections_per_ip,
                     max_header_bytes=max_header_bytes, max_headers=max_headers,
                     max_message_bytes=max_message_bytes, handshake_timeout_s=handshake_timeout_s)
    lifetime = _lifetime(heartbeat_s, idle_timeout_s, timeout_s, run_once, stall_timeout_s)
    worker_count = _workers(workers)
    logs = _log_settings(verbose=verbose, log_file=log_file, syslog=syslog, legacy_syslog=legacy_syslog,
                         daemon=daemon, traffic=traffic, log_format=log_format)
    tls = _tls_settings(cert, key, key_password, ssl_only, ssl_ciphers, ssl_version, verify_client, cafile)
    _check_ssl_target(ssl_target, target, token_plugin)
    if target_proxy_protocol is not None and ssl_target:  # HAProxy's servers read it before TLS, ours inside
        raise ConfigError("--target-proxy-protocol cannot be combined with --ssl-target")
    metrics_address = parse_metrics_address(metrics) if metrics is not None else None
    if metrics_address is not None and listen is not None and metrics_address.port == listen.port != 0:
        raise ConfigError(f"--metrics {metrics}: the source port is the clients'; give metrics a port of its own")
    _check_auth(auth_plugin, auth_source, web_auth, web)

    return Config(
        listen=listen,
        target=target,
        wrap_command=tuple(wrap_command),
        wrap_mode=checked_wrap_mode,
        token_plugin=token_plugin,
        token_source=token_source,
        host_token=host_token,
        web_dir=web,
        prefer_ipv6=prefer_ipv6,
        unix_listen=unix_listen,
        unix_listen_mode=_mode(unix_listen_mode),
        inetd=inetd,
        daemon=daemon,
        pid_file=pid_file,
        logs=logs,
        lifetime=lifetime,
        limits=limits,
        tls=tls,
        ssl_target=ssl_target,
        web_auth=web_auth,
        auth_plugin=auth_plugin,
        auth_source=auth_source,
        allowed_origins=parse_origins(allowed_origins) if allowed_origins is not None else None,
        allowed_hosts=parse_hosts(allowed_hosts),
        proxy_protocol=proxy_protocol,
        trusted_proxies=parse_trusted_proxies(trusted_proxies),
        forwarded_header=cast(ForwardedHeader, forwarded_header),
        target_proxy_protocol=cast("TargetProxyProtocol | None", target_proxy_protocol),
        metrics=metrics_address,
        record=record,
        hixie76=hixie76,
        grace_period_s=grace_period_s,
        workers=worker_count,
    )


# -- Tokens and authentication -------------------------------------------------

def _tokens(plugin: str | None, source: str | None, host_token: bool,
            target_config: str | None) -> tuple[str | None, str | None]:
    """(token plugin, token source), with upstream's --target-config read as a token file."""
    if target_config is not None:  # upstream's deprecated spelling of a token file
        if plugin is not None or source is not None:
            raise ConfigError("--target-config is a token file: give it or --token-plugin, not both")
        plugin, source = "TokenFile", target_config
    if source is not None and plugin is None:
        raise ConfigError("--token-source requires --token-plugin")
    if host_token and plugin is None:
        raise ConfigError("--host-token requires --token-plugin")
    return plugin, source


def _check_auth(auth_plugin: str | None, auth_source: str | None, web_auth: bool,
                web: str | None) -> None:
    if auth_source is not None and auth_plugin is None:
        raise ConfigError("--auth-source requires --auth-plugin")
    if web_auth and (auth_plugin is None or web is None):
        raise ConfigError("--web-auth requires --auth-plugin and --web")


# -- Listening -----------------------------------------------------------------

def _check_listening(unix_listen: str | None, inetd: bool) -> None:
    if unix_listen is not None and inetd:
        raise ConfigError("--unix-listen and --inetd are two listening sockets: give one")
    if unix_listen is not None and not unix_listen:
        raise ConfigError("--unix-listen: empty path")


def _mode(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ConfigError(f"--unix-listen-mode: {text!r} is not an octal mode like 0600")
    return int(text, 8)


# -- Source address and target -------------------------------------------------

def _source_and_target(arguments: tuple[str, ...], *, wrap_command: tuple[str, ...], unix_target: str | None,
                       token_plugin: str | None, unix_listen: str | None, inetd: bool,
                       socket_activated: bool) -> tuple[TcpAddress | None, Target | None]:
    """The TCP address to listen on (None: the socket comes from elsewhere) and the
    target address (None: tokens or a wrapped program decide it)."""
    listen, target = split_positionals(
        arguments, wrapping=bool(wrap_command), listen_elsewhere=unix_listen is not None or inetd or socket_activated,
        other_target=unix_target is not None or token_plugin is not None)
    routes = _routes_given(target, unix_target, wrap_command, token_plugin)
    listen_address = _source_address(listen, routes)
    if listen_address is not None and (unix_listen is not None or inetd) and not wrap_command:
        raise ConfigError(f"a source address cannot be given with {'--inetd' if inetd else '--unix-listen'}")
    if not routes:
        raise ConfigError("missing target: give TARGET_ADDR:TARGET_PORT, --unix-target FILE, "
                          "--token-plugin CLASS or -- COMMAND")
    if len(routes) > 1:
        raise ConfigError(f"conflicting targets: {' and '.join(routes)}")
    return listen_address, _target_address(target, unix_target)


def _routes_given(target: str | None, unix_target: str | None, wrap_command: tuple[str, ...],
                  token_plugin: str | None) -> list[str]:
    """The ways to a target the command line gives, as an error names them; exactly one is allowed."""
    return [name for name, given in (
        ("a target address", target is not None),
        ("--unix-target", unix_target is not None),
        ("a wrapped command (-- COMMAND)", bool(wrap_command)),
        ("--token-plugin", token_plugin is not None),
    ) if given]


def _source_address(listen: str | None, routes: list[str]) -> TcpAddress | None:
    try:
        return parse_listen(listen) if listen is not None else None
    except TooManyColons:
        if routes:
            raise
        # `websockify localhost:6080:5900`: the source and the target written as one argument.
        raise ConfigError(f"{listen!r} is not [SOURCE_ADDR:]SOURCE_PORT (too many colons), and no target is "
                          "given: write the source and the target as two arguments, "
                          "[SOURCE_ADDR:]SOURCE_PORT TARGET_ADDR:TARGET_PORT") from None


def _target_address(target: str | None, unix_target: str | None) -> Target | None:
    if target is not None:
        return parse_target(target)
    if unix_target is not None:
        if not unix_target:
            raise ConfigError("--unix-target: empty path")
        return UnixAddress(unix_target)
    return None


def _check_ssl_target(ssl_target: bool, target: Target | None, token_plugin: str | None) -> None:
    if ssl_target and not (target is not None or token_plugin):
        raise ConfigError("--ssl-target needs a TCP target or a token plugin")
    if isinstance(target, UnixAddress) and ssl_target:
        raise ConfigError("--ssl-target cannot be used with --unix-target")


# -- Wrapping a program --------------------------------------------------------

def _wrapping(wrap_command: tuple[str, ...], wrap_mode: str, grace_period_s: float,
              listen: TcpAddress | None, *, port_given_elsewhere: bool) -> WrapMode:
    """The checked --wrap-mode. A wrapped program binds a port we know in advance:
    the source port, or the inherited socket's (--inetd, systemd)."""
    if wrap_command:
        if listen is None and not port_given_elsewhere:
            raise ConfigError("a wrapped command with --unix-listen needs the port it binds: give SOURCE_PORT")
        if listen is not None and listen.port == 0:
            raise ConfigError("a wrapped command needs a fixed source port, not 0")
    if wrap_mode not in WRAP_MODES:
        raise ConfigError(f"--wrap-mode: {wrap_mode!r} is not one of {', '.join(WRAP_MODES)}")
    _positive(grace_period_s, "--grace-period", allow_zero=True)
    return cast(WrapMode, wrap_mode)  # checked against WRAP_MODES above


# -- Limits, lifetime, workers, logging ----------------------------------------

def _limits(*, max_connections: int, max_connections_per_ip: int, max_header_bytes: int, max_headers: int,
            max_message_bytes: int, handshake_timeout_s: float) -> Limits:
    _positive(handshake_timeout_s, "--handshake-timeout")
    if max_message_bytes < MIN_MAX_MESSAGE_BYTES:
        raise ConfigError(f"--max-message-size: must be at least {MIN_MAX_MESSAGE_BYTES} bytes")
    _positive(max_connections, "--max-connections")
    _positive(max_connections_per_ip, "--max-connections-per-ip", allow_zero=True)
    if max_header_bytes < 1024:
        raise ConfigError("--max-header-bytes: must be at least 1024")
    _positive(max_headers, "--max-headers")
    return Limits(max_connections=max_connections, max_connections_per_ip=max_connections_per_ip,
                  max_header_bytes=max_header_bytes, max_headers=max_headers,
                  max_message_bytes=max_message_bytes, handshake_timeout_s=handshake_timeout_s)


def _lifetime(heartbeat_s: float, idle_timeout_s: float, timeout_s: float, run_once: bool,
              stall_timeout_s: float | None = None) -> Lifetime:
    for value, option in ((heartbeat_s, "--heartbeat"), (idle_timeout_s, "--idle-timeout"), (timeout_s, "--timeout"),
                          (stall_timeout_s or 0.0, "--stall-timeout")):
        _positive(value, option, allow_zero=True)
    return Lifetime(heartbeat_s=heartbeat_s, idle_timeout_s=idle_timeout_s, timeout_s=timeout_s, run_once=run_once,
                    stall_timeout_s=stall_timeout_s)


def _workers(text: str) -> int:
    """--workers: a count of processes, 0 for auto (one per available CPU)."""
    if text != "auto" and not (text.isdigit() and 1 <= int(text) <= 256):
        raise ConfigError(f"--workers: {text!r} is not a number of processes (1-256) or auto")
    return 0 if text == "auto" else int(text)


def _log_settings(*, verbose: bool, log_file: str | None, syslog: str | None, legacy_syslog: bool,
                  daemon: bool, traffic: bool, log_format: str) -> LogSettings:
    if legacy_syslog and syslog is None:
        raise ConfigError("--legacy-syslog requires --syslog")
    return LogSettings(verbose=verbose, log_file=log_file, syslog=syslog, legacy_syslog=legacy_syslog,
                       daemon=daemon, traffic=traffic, format=cast(LogFormat, log_format))



# -- TLS -----------------------------------------------------------------------

def _tls_settings(cert: str | None, key: str | None, key_password: str | None, ssl_only: bool,
                  ciphers: str | None, ssl_version: str, verify_client: bool,
                  cafile: str | None) -> TlsSettings:
    """TLS is on with --cert, or with --ssl-only/--verify-client and upstream's
    default certificate file."""
    default_cert_for = None
    if cert is None and (ssl_only or verify_client):
        cert = DEFAULT_CERT
        default_cert_for = "--ssl-only" if ssl_only else "--verify-client"
    if key is not None and cert is None:
        raise ConfigError("--key requires --cert")
    if ssl_version not in SSL_VERSIONS:
        raise ConfigError(f"--ssl-version: {ssl_version!r} is not one of {', '.join(SSL_VERSIONS)}")
    return TlsSettings(
        cert=cert, key=key, key_password=key_password, ssl_only=ssl_only, ciphers=ciphers,
        min_version=cast(SslVersion, ssl_version),  # checked against SSL_VERSIONS above
        verify_client=verify_client, cafile=cafile, default_cert_for=default_cert_for,
    )
