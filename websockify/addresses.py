"""Addresses as the command line writes them: `[host:]port`, `host:port`, `[v6]:port`.

Pure parsing and validation, shared by the command line, token files and logs.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from .errors import ConfigError


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


Target = TcpAddress | UnixAddress


class TooManyColons(ConfigError):
    """`HOST:PORT` whose host holds a colon yet is no IPv6 address: often two
    addresses run together (`localhost:6080:5900`)."""


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


def _looks_like_ipv6(host: str) -> bool:
    # At least two colons: `cafe:6080` is a host name (hex letters) and a port run together.
    return "::" in host or (host.count(":") >= 2 and re.fullmatch(r"[0-9A-Fa-f:.]+(%\S+)?", host) is not None)


def _split_host_port(text: str, what: str, form: str) -> tuple[str, str, str]:
    """`text.rpartition(":")`, refusing a colon in the host that no IPv6 address explains."""
    host, sep, port_text = text.rpartition(":")
    if ":" in host and not host.startswith("[") and not _looks_like_ipv6(host):
        raise TooManyColons(f"{what}: {text!r} has too many colons for {form} "
                            f"(write an IPv6 address in brackets: [ADDRESS]:PORT)")
    return host, sep, port_text


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
    if ":" in text:  # upstream splits at the last colon: `::1:5900` works without brackets
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            raise ConfigError(f"{what}: {text!r} is not an IPv6 address (write it in brackets: "
                              f"[ADDRESS]:PORT)") from None
    if re.fullmatch(r"[0-9.]+", text):
        try:
            # The forms getaddrinfo accepts, as upstream passed them on: 127.1, 0, 10.1.2.
            return socket.inet_ntoa(socket.inet_aton(text))
        except OSError:
            raise ConfigError(f"{what}: {text!r} is not a valid IPv4 address") from None
    if _HOSTNAME.match(text):
        return text
    raise ConfigError(f"{what}: {text!r} is not a valid host name or address")


def parse_listen(text: str) -> TcpAddress:
    """`[host:]port` as upstream accepts it: `6080`, `:6080` (every address),
    `0.0.0.0:6080`, `[::1]:6080`, `::1:6080`."""
    what = "source address"
    if text.startswith("[") and "]:" not in text:
        raise ConfigError(f"{what}: {text!r} has no port; write [ADDRESS]:PORT")
    host, sep, port_text = _split_host_port(text, what, "[SOURCE_ADDR:]SOURCE_PORT")
    if not sep or not host:
        return TcpAddress("", parse_port(port_text, what, allow_zero=True))
    return TcpAddress(parse_host(host, what), parse_port(port_text, what, allow_zero=True))


def parse_metrics_address(text: str) -> TcpAddress:
    """--metrics [HOST:]PORT; without a host, loopback: metrics and health are not for the public."""
    try:
        address = parse_listen(text)
    except ConfigError:
        raise ConfigError(f"--metrics: {text!r} is not [HOST:]PORT") from None
    return address if address.host else TcpAddress("127.0.0.1", address.port)


def parse_target(text: str) -> TcpAddress:
    """`host:port`; the host is required, as upstream requires it."""
    what = "target address"
    host, sep, port_text = _split_host_port(text, what, "TARGET_ADDR:TARGET_PORT")
    if not sep or not host:
        raise ConfigError(f"{what}: {text!r} must be HOST:PORT")
    return TcpAddress(parse_host(host, what), parse_port(port_text, what))
