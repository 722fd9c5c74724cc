"""Who may reach us and whom we believe: `--allowed-origins`, `--allowed-hosts`, `--trusted-proxies`.

Parsed here into the tuples Config holds; protocol/http.py compares a request's
`Origin` and `Host` headers with the first two, and protocol/forwarded.py asks
trusts() whether a hop's headers may name the real client. No I/O.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence

from .errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


# -- --trusted-proxies ---------------------------------------------------------

# Loopback only: a reverse proxy on the same host is the common case, and trusting
# it costs nothing, since whoever can connect from there can do worse already.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def ip_of(text: str) -> IPAddress | None:
    """`text` as an address: brackets and an IPv6 zone (`%eth0`) dropped, an IPv4-mapped
    IPv6 address as the IPv4 address it maps; None if it is not an IP address."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:  # only IPv6 has zones
        text = text.split("%", 1)[0]
    # ipaddress would take non-ASCII digits in some versions: an address is ASCII.
    if not text.isascii():
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normal_ip(text: str) -> str | None:
    """`text` as the IP address string logs and lists compare (see ip_of), or None."""
    address = ip_of(text)
    return None if address is None else str(address)


def parse_trusted_proxies(text: str) -> tuple[IPNetwork, ...]:
    """`--trusted-proxies`: addresses or CIDR networks, separated by commas or spaces.

    A bare address is a /32 or /128; an IPv4-mapped IPv6 network becomes the IPv4
    network it maps, as trusts() compares mapped addresses as IPv4."""
    items = _items(text)
    if not items:
        raise ConfigError("--trusted-proxies: give at least one address or network, like 10.0.0.0/8")
    networks: list[IPNetwork] = []
    for item in items:
        network = _network(item)
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def _network(item: str) -> IPNetwork:
    text = item[1:-1] if item.startswith("[") and item.endswith("]") else item
    if "%" in text or not text.isascii():
        raise ConfigError(f"--trusted-proxies: {item!r} is not an address or network like 10.0.0.0/8")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"--trusted-proxies: {item!r} is not an address or network like 10.0.0.0/8") from None
    # 10.0.0.1/8 is likely a typo for 10.0.0.0/8 or 10.0.0.1/32: refuse rather than guess.
    if "/" in text and network.network_address != ipaddress.ip_address(text.split("/", 1)[0]):
        raise ConfigError(f"--trusted-proxies: {item!r} has host bits set; did you mean {network}?")
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def trusts(networks: Sequence[IPNetwork], ip: str) -> bool:
    """Whether `ip` lies in one of `networks`; False for anything not an IP address
    (a Unix socket's empty peer name). IPv4-mapped IPv6 addresses count as IPv4."""
    return _trusts(tuple(networks), ip)


# Called for every connection, and for each hop of a forwarded chain: the same few
# proxy addresses recur, so remember the answers (bounded, the keys are short).
@functools.lru_cache(maxsize=4096)
def _trusts(networks: tuple[IPNetwork, ...], ip: str) -> bool:
    address = ip_of(ip)
    if address is None:
        return False
    return any(address in network for network in networks)
