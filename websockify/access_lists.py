"""The names a browser's request may carry: `--allowed-origins` and `--allowed-hosts`.

Parsed here into the tuples Config holds; protocol/http.py compares a request's
`Origin` and `Host` headers with them. No I/O.
"""
from __future__ import annotations

import ipaddress
import re

from .errors import ConfigError

ANY = "*"
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")
# A DNS name (letters, digits, hyphens, underscores as some internal zones have), dots between labels.
_NAME = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")


def _items(text: str) -> tuple[str, ...]:
    return tuple(part for part in re.split(r"[,\s]+", text.strip()) if part)


def parse_origins(text: str) -> tuple[str, ...]:
    """`--allowed-origins`: exact origins (`scheme://host[:port]`), separated by
    commas or spaces, or `*` for any."""
    origins = _items(text)
    if not origins:
        raise ConfigError("--allowed-origins: give at least one origin, or * for any")
    for origin in origins:
        if origin != ANY and not _ORIGIN.match(origin.lower()):
            raise ConfigError(f"--allowed-origins: {origin!r} is not an origin like https://host[:port]")
    return tuple(o if o == ANY else o.lower() for o in origins)


def parse_hosts(text: str) -> tuple[str, ...]:
    """`--allowed-hosts`: host names or IP addresses (no port), separated by commas or
    spaces; `.example.com` also allows every name under example.com; `*` any.
    Returned lower-case, without a trailing dot or IPv6 brackets."""
    hosts = _items(text)
    if not hosts:
        raise ConfigError("--allowed-hosts: give at least one host name, or * for any")
    allowed = []
    for host in hosts:
        if host == ANY:
            allowed.append(host)
            continue
        normal = normal_host(host)
        if normal is None or (normal.startswith(".") and not _NAME.match(normal[1:])):
            raise ConfigError(f"--allowed-hosts: {host!r} is not a host name or IP address (give no port)")
        allowed.append(normal)
    return tuple(allowed)


def normal_host(host: str) -> str | None:
    """A host as the lists compare it: lower-case, no trailing dot, an IPv6 address
    without brackets and in its short form; None if it is neither a name nor an address."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    host = host[:-1] if host.endswith(".") and not host.endswith("..") else host
    if host.startswith(".") and _NAME.match(host[1:]):
        return host
    return host if _NAME.match(host) else None
