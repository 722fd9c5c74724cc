"""Validated settings. No I/O here: the single source of defaults and choices.

`cli.py` turns the command line into a `Config` with `build_config`, whose
keyword parameters are exactly the command line's options (a test holds the
two together); everything below it only reads the frozen dataclasses.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, Optional, Union, cast, get_args

from .errors import ConfigError

WrapMode = Literal["exit", "ignore", "respawn"]
WRAP_MODES: tuple[str, ...] = get_args(WrapMode)
SslVersion = Literal["default", "tlsv1_1", "tlsv1_2", "tlsv1_3"]
SSL_VERSIONS: tuple[str, ...] = get_args(SslVersion)

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
ANY_ORIGIN = "*"


@dataclass(frozen=True)
class TcpAddress:
    host: str  # "" = every address (listen side only)
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


@dataclass(frozen=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


Target = Union[TcpAddress, UnixAddress]


@dataclass(frozen=True)
class TlsSettings:
    """The listening side's TLS. `cert` None means: plain connections only."""
    cert: Optional[str] = None
    key: Optional[str] = None
    key_password: Optional[str] = None
    ssl_only: bool = False
    ciphers: Optional[str] = None
    min_version: SslVersion = DEFAULT_SSL_VERSION
    verify_client: bool = False
    cafile: Optional[str] = None

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
class Config:
    listen: TcpAddress
    target: Optional[Target] = None
    wrap_command: tuple[str, ...] = ()
    wrap_mode: WrapMode = DEFAULT_WRAP_MODE
    token_plugin: Optional[str] = None
    token_source: Optional[str] = None
    web_dir: Optional[str] = None
    prefer_ipv6: bool = False
    verbose: bool = False
    limits: Limits = Limits()
    tls: TlsSettings = TlsSettings()
    ssl_target: bool = False
    web_auth: bool = False
    auth_plugin: Optional[str] = None
    auth_source: Optional[str] = None
    # None: same origin only when --web serves the page, any origin otherwise.
    allowed_origins: Optional[tuple[str, ...]] = None
    record: Optional[str] = None
    hixie76: bool = False
    write_buffer_bytes: int = DEFAULT_WRITE_BUFFER_BYTES
    close_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    listen_backlog: int = 1024
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S

    @property
    def max_message_bytes(self) -> int:
        return self.limits.max_message_bytes

    @property
    def handshake_timeout_s(self) -> float:
        return self.limits.handshake_timeout_s


def format_host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 literal in brackets."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


def parse_port(text: str, what: str, allow_zero: bool = False) -> int:
    if not text.isdigit():
        raise ConfigError(f"{what}: port {text!r} is not a number")
    port = int(text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(f"{what}: port {port} is out of range {low}-65535")
    return port


def parse_host(text: str, what: str) -> str:
    """Validate a host: an IPv4/IPv6 literal (brackets removed) or a DNS name."""
    if text.startswith("[") or text.endswith("]"):
        if not (text.startswith("[") and text.endswith("]")):
            raise ConfigError(f"{what}: unbalanced brackets in {text!r}")
        inner = text[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ConfigError(f"{what}: {inner!r} is not an IPv6 address") from None
        return inner
    if ":" in text:
        raise ConfigError(f"{what}: IPv6 address {text!r} must be written in brackets, e.g. [{text}]")
    if re.fullmatch(r"[0-9.]+", text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise ConfigError(f"{what}: {text!r} is not a valid IPv4 address") from None
        return text
    if _HOSTNAME.match(text):
        return text
    raise ConfigError(f"{what}: {text!r} is not a valid host name or address")


def parse_listen(text: str) -> TcpAddress:
    """`[host:]port` as upstream accepts it: `6080`, `0.0.0.0:6080`, `[::1]:6080`."""
    what = "source address"
    if text.startswith("[") and "]:" not in text:
        raise ConfigError(f"{what}: {text!r} has no port; write [ADDRESS]:PORT")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return TcpAddress("", parse_port(text, what, allow_zero=True))
    if not host:
        raise ConfigError(f"{what}: empty host in {text!r}")
    return TcpAddress(parse_host(host, what), parse_port(port_text, what, allow_zero=True))


def parse_target(text: str) -> TcpAddress:
    """`host:port`; the host is required, as upstream requires it."""
    what = "target address"
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {text!r} must be HOST:PORT")
    return TcpAddress(parse_host(host, what), parse_port(port_text, what))


_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")


def parse_origins(text: str) -> tuple[str, ...]:
    """`--allowed-origins`: exact origins (`scheme://host[:port]`), separated by
    commas or spaces, or `*` for any."""
    origins = tuple(part for part in re.split(r"[,\s]+", text.strip()) if part)
    if not origins:
        raise ConfigError("--allowed-origins: give at least one origin, or * for any")
    for origin in origins:
        if origin != ANY_ORIGIN and not _ORIGIN.match(origin.lower()):
            raise ConfigError(f"--allowed-origins: {origin!r} is not an origin like https://host[:port]")
    return tuple(o if o == ANY_ORIGIN else o.lower() for o in origins)


def _positive(value: float, option: str, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{option}: must be {'zero or more' if allow_zero else 'positive'}")


def build_config(
    *,
    listen: Optional[str],
    target: Optional[str] = None,
    extra_args: tuple[str, ...] = (),
    wrap_command: tuple[str, ...] = (),
    verbose: bool = False,
    prefer_ipv6: bool = False,
    unix_target: Optional[str] = None,
    web: Optional[str] = None,
    wrap_mode: str = DEFAULT_WRAP_MODE,
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S,
    handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S,
    cert: Optional[str] = None,
    key: Optional[str] = None,
    key_password: Optional[str] = None,
    ssl_only: bool = False,
    ssl_ciphers: Optional[str] = None,
    ssl_version: str = DEFAULT_SSL_VERSION,
    verify_client: bool = False,
    cafile: Optional[str] = None,
    ssl_target: bool = False,
    web_auth: bool = False,
    file_only: bool = False,
    hixie76: bool = False,
    record: Optional[str] = None,
    auth_plugin: Optional[str] = None,
    auth_source: Optional[str] = None,
    token_plugin: Optional[str] = None,
    token_source: Optional[str] = None,
    allowed_origins: Optional[str] = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_headers: int = DEFAULT_MAX_HEADERS,
) -> Config:
    """Check the combination of arguments the way upstream does and build a Config.

    `file_only` is accepted for upstream's command lines: directories are never listed.
    """
    del file_only
    if listen is None:
        raise ConfigError("missing source address: give [SOURCE_ADDR:]SOURCE_PORT")
    if extra_args:
        raise ConfigError(f"too many arguments: {' '.join(extra_args)}")
    listen_address = parse_listen(listen)

    if token_source is not None and token_plugin is None:
        raise ConfigError("--token-source requires --token-plugin")

    routes = [name for name, given in (
        ("a target address", target is not None),
        ("--unix-target", unix_target is not None),
        ("a wrapped command (-- COMMAND)", bool(wrap_command)),
        ("--token-plugin", token_plugin is not None),
    ) if given]
    if not routes:
        raise ConfigError("missing target: give TARGET_ADDR:TARGET_PORT, --unix-target FILE, "
                          "--token-plugin CLASS or -- COMMAND")
    if len(routes) > 1:
        raise ConfigError(f"conflicting targets: {' and '.join(routes)}")

    resolved_target: Optional[Target] = None
    if target is not None:
        resolved_target = parse_target(target)
    elif unix_target is not None:
        if not unix_target:
            raise ConfigError("--unix-target: empty path")
        resolved_target = UnixAddress(unix_target)

    if wrap_command and listen_address.port == 0:
        raise ConfigError("a wrapped command needs a fixed source port, not 0")
    if wrap_mode not in WRAP_MODES:
        raise ConfigError(f"--wrap-mode: {wrap_mode!r} is not one of {', '.join(WRAP_MODES)}")
    _positive(grace_period_s, "--grace-period", allow_zero=True)
    _positive(handshake_timeout_s, "--handshake-timeout")
    if max_message_bytes < MIN_MAX_MESSAGE_BYTES:
        raise ConfigError(f"--max-message-size: must be at least {MIN_MAX_MESSAGE_BYTES} bytes")
    _positive(max_connections, "--max-connections")
    _positive(max_connections_per_ip, "--max-connections-per-ip", allow_zero=True)
    if max_header_bytes < 1024:
        raise ConfigError("--max-header-bytes: must be at least 1024")
    _positive(max_headers, "--max-headers")

    tls = _tls_settings(cert, key, key_password, ssl_only, ssl_ciphers, ssl_version, verify_client, cafile)
    if ssl_target and not (resolved_target is not None or token_plugin):
        raise ConfigError("--ssl-target needs a TCP target or a token plugin")
    if isinstance(resolved_target, UnixAddress) and ssl_target:
        raise ConfigError("--ssl-target cannot be used with --unix-target")
    if auth_source is not None and auth_plugin is None:
        raise ConfigError("--auth-source requires --auth-plugin")
    if web_auth and (auth_plugin is None or web is None):
        raise ConfigError("--web-auth requires --auth-plugin and --web")

    return Config(
        listen=listen_address,
        target=resolved_target,
        wrap_command=tuple(wrap_command),
        wrap_mode=cast(WrapMode, wrap_mode),  # checked against WRAP_MODES above
        token_plugin=token_plugin,
        token_source=token_source,
        web_dir=web,
        prefer_ipv6=prefer_ipv6,
        verbose=verbose,
        limits=Limits(
            max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip,
            max_header_bytes=max_header_bytes,
            max_headers=max_headers,
            max_message_bytes=max_message_bytes,
            handshake_timeout_s=handshake_timeout_s,
        ),
        tls=tls,
        ssl_target=ssl_target,
        web_auth=web_auth,
        auth_plugin=auth_plugin,
        auth_source=auth_source,
        allowed_origins=parse_origins(allowed_origins) if allowed_origins is not None else None,
        record=record,
        hixie76=hixie76,
        grace_period_s=grace_period_s,
    )


def _tls_settings(cert: Optional[str], key: Optional[str], key_password: Optional[str], ssl_only: bool,
                  ciphers: Optional[str], ssl_version: str, verify_client: bool,
                  cafile: Optional[str]) -> TlsSettings:
    """TLS is on with --cert, or with --ssl-only/--verify-client and upstream's
    default certificate file."""
    if cert is None and (ssl_only or verify_client):
        cert = DEFAULT_CERT
    if key is not None and cert is None:
        raise ConfigError("--key requires --cert")
    if ssl_version not in SSL_VERSIONS:
        raise ConfigError(f"--ssl-version: {ssl_version!r} is not one of {', '.join(SSL_VERSIONS)}")
    return TlsSettings(
        cert=cert, key=key, key_password=key_password, ssl_only=ssl_only, ciphers=ciphers,
        min_version=cast(SslVersion, ssl_version),  # checked against SSL_VERSIONS above
        verify_client=verify_client, cafile=cafile,
    )
