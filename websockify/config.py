"""Validated settings. No I/O here: the single source of defaults.

`cli.py` turns the command line into a `Config` with `build_config`; everything
below it only reads the frozen dataclasses.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Optional, Union

from .errors import ConfigError

WRAP_MODES = ("exit", "ignore", "respawn")

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
# Write-buffer high-water mark of each leg. Reading from the other leg pauses
# above it, so it is the main term of the per-connection memory bound.
DEFAULT_WRITE_BUFFER_BYTES = 256 * 1024


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

SSL_VERSIONS = ("default", "tlsv1_1", "tlsv1_2", "tlsv1_3")
# Upstream's default certificate name, used when TLS is asked for without --cert.
DEFAULT_CERT = "self.pem"


@dataclass(frozen=True)
class TlsSettings:
    """The listening side's TLS. `cert` None means: plain connections only."""
    cert: Optional[str] = None
    key: Optional[str] = None
    key_password: Optional[str] = None
    ssl_only: bool = False
    ciphers: Optional[str] = None
    min_version: str = "default"
    verify_client: bool = False
    cafile: Optional[str] = None

    @property
    def enabled(self) -> bool:
        return self.cert is not None


@dataclass(frozen=True)
class Config:
    listen: TcpAddress
    target: Optional[Target] = None
    wrap_command: tuple[str, ...] = ()
    wrap_mode: str = "exit"
    token_plugin: Optional[str] = None
    token_source: Optional[str] = None
    web_dir: Optional[str] = None
    prefer_ipv6: bool = False
    verbose: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    tls: TlsSettings = TlsSettings()
    ssl_target: bool = False
    web_auth: bool = False
    auth_plugin: Optional[str] = None
    auth_source: Optional[str] = None
    record: Optional[str] = None
    hixie76: bool = False
    write_buffer_bytes: int = DEFAULT_WRITE_BUFFER_BYTES
    handshake_timeout_s: float = 10.0
    close_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    listen_backlog: int = 1024
    grace_period_s: float = 10.0


def format_host_port(host: str, port: int) -> str:
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


def build_config(
    *,
    listen: Optional[str],
    target: Optional[str],
    extra_args: tuple[str, ...] = (),
    wrap_command: tuple[str, ...] = (),
    unix_target: Optional[str] = None,
    token_plugin: Optional[str] = None,
    token_source: Optional[str] = None,
    **options,
) -> Config:
    """Check the combination of arguments the way upstream does and build a Config."""
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

    wrap_mode = options.pop("wrap_mode", "exit")
    if wrap_mode not in WRAP_MODES:
        raise ConfigError(f"--wrap-mode: {wrap_mode!r} is not one of {', '.join(WRAP_MODES)}")

    grace_period_s = options.get("grace_period_s", 10.0)
    if grace_period_s < 0:
        raise ConfigError("--grace-period: must not be negative")

    max_message_bytes = options.pop("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
    if max_message_bytes < 125:
        raise ConfigError("--max-message-size: must be at least 125 bytes")

    tls = _tls_settings(options)
    if options.get("ssl_target") and not (resolved_target is not None or token_plugin):
        raise ConfigError("--ssl-target needs a TCP target or a token plugin")
    if isinstance(resolved_target, UnixAddress) and options.get("ssl_target"):
        raise ConfigError("--ssl-target cannot be used with --unix-target")
    if options.get("auth_source") is not None and options.get("auth_plugin") is None:
        raise ConfigError("--auth-source requires --auth-plugin")
    if options.get("web_auth") and (options.get("auth_plugin") is None or options.get("web_dir") is None):
        raise ConfigError("--web-auth requires --auth-plugin and --web")
    if options.get("handshake_timeout_s", 1) <= 0:
        raise ConfigError("--handshake-timeout: must be positive")

    return Config(
        listen=listen_address,
        target=resolved_target,
        wrap_command=tuple(wrap_command),
        wrap_mode=wrap_mode,
        token_plugin=token_plugin,
        token_source=token_source,
        max_message_bytes=max_message_bytes,
        tls=tls,
        **options,
    )


def _tls_settings(options: dict) -> TlsSettings:
    """Pop the TLS options; TLS is on with --cert, or with --ssl-only/--verify-client
    and upstream's default certificate file."""
    cert = options.pop("cert", None)
    key = options.pop("key", None)
    ssl_only = bool(options.pop("ssl_only", False))
    verify_client = bool(options.pop("verify_client", False))
    if cert is None and (ssl_only or verify_client):
        cert = DEFAULT_CERT
    if key is not None and cert is None:
        raise ConfigError("--key requires --cert")
    min_version = options.pop("ssl_version", None) or "default"
    if min_version not in SSL_VERSIONS:
        raise ConfigError(f"--ssl-version: {min_version!r} is not one of {', '.join(SSL_VERSIONS)}")
    return TlsSettings(
        cert=cert, key=key, key_password=options.pop("key_password", None), ssl_only=ssl_only,
        ciphers=options.pop("ssl_ciphers", None), min_version=min_version,
        verify_client=verify_client, cafile=options.pop("cafile", None),
    )
