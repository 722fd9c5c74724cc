"""The real client behind trusted reverse proxies, from the headers they add.

Each proxy appends the address it received the request from to a list, so the list
reads client, proxy 1, proxy 2, ... with our own peer the last proxy. Anything left
of an address we do not trust was written by someone we do not trust, so the client
is the right-most address that is not one of our trusted proxies: we walk the list
from the right, past trusted hops, and stop at the first untrusted one. The left-most
entry is never believed for its position alone, as a client can send any list.

One list is read, across repeated headers in order: the one the caller names, or
`Forwarded` (RFC 7239) if it names a hop, else `X-Forwarded-For`, else `X-Real-IP`. A hop we
cannot read (malformed, `unknown`, an obfuscated `_name`) ends the walk at the last
address we could, which a trusted proxy vouched for. No I/O; never raises for any
header text.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterator

from websockets.datastructures import Headers

from ..access_lists import normal_ip

# Past this many hops from the right, stop walking: no deployment chains so many
# trusted proxies, and the bound keeps a long forged list cheap.
MAX_HOPS = 64
# A hop we cannot read; the walk stops there.
_UNREADABLE = None


class Source(enum.Enum):
    """Which header names the chain. AUTO takes the first present in the order below;
    naming the one your proxies set is safer, as a proxy that sets one header usually
    passes a client's other ones through unchanged."""

    AUTO = "auto"
    FORWARDED = "Forwarded"
    X_FORWARDED_FOR = "X-Forwarded-For"
    X_REAL_IP = "X-Real-IP"


def client_address(headers: Headers, peer_ip: str, trusted: Callable[[str], bool],
                   source: Source = Source.AUTO) -> str:
    """The client's IP address: `peer_ip` itself unless `trusted(peer_ip)`, else the
    right-most untrusted address the forwarding headers name (see the module's notes).

    `trusted` is given normalized addresses (IPv4-mapped as IPv4, no brackets, port or
    zone), as is the result; a `peer_ip` that is no IP address is returned as it is."""
    peer = normal_ip(peer_ip) or peer_ip
    if not trusted(peer):
        return peer
    hops = _chain(headers, source)
    found = peer
    for count, hop in enumerate(reversed(hops)):
        if hop is _UNREADABLE or count >= MAX_HOPS:
            return found  # the view of the nearest trusted proxy
        found = hop
        if not trusted(hop):
            return hop
    return found  # every hop trusted: the left-most is as near the client as we know


def _chain(headers: Headers, source: Source) -> list[str | None]:
    """The hops one header names, left to right, None for an unreadable one."""
    if source in (Source.AUTO, Source.FORWARDED):
        forwarded = list(_forwarded_elements(headers.get_all("Forwarded")))
        # A Forwarded header of proto= or host= alone (no hop named, none broken) lets
        # AUTO look further; a broken one does not, or a client could choose the header.
        if source is Source.FORWARDED or any(params is None or "for" in params for params in forwarded):
            return [_forwarded_for(params) for params in forwarded]
    names = [source.value] if source is not Source.AUTO else ["X-Forwarded-For", "X-Real-IP"]
    for name in names:
        values = headers.get_all(name)
        if values:
            return [_plain_node(item) for value in values for item in value.split(",") if item.strip()]
    return []


# -- nodes: an address, maybe bracketed, maybe with a port ----------------------

def _plain_node(item: str) -> str | None:
    """An X-Forwarded-For or X-Real-IP item: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`,
    the first and last with `:port` (some balancers, Azure's among them, add it)."""
    return _node(item.strip(), obfuscated_ports=False)


def _forwarded_for(params: dict[str, str] | None) -> str | None:
    """The `for=` node of one Forwarded element (RFC 7239 §6). `unknown` and obfuscated
    `_name` identifiers are unreadable; an obfuscated `:_port` is fine, as the port is
    not wanted. An unbracketed IPv6 address breaks the grammar, but is unambiguous."""
    if params is None or "for" not in params:
        return _UNREADABLE
    return _node(params["for"], obfuscated_ports=True)


def _node(node: str, obfuscated_ports: bool) -> str | None:
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _is_port(rest[1:], obfuscated_ports))):
            return _UNREADABLE
        # Brackets hold an IPv6 address, never an IPv4 one.
        return _address(host) if ":" in host else _UNREADABLE
    if node.count(":") == 1:  # IPv4:port; IPv6 has two colons at least
        host, _, port = node.partition(":")
        return _address(host) if _is_port(port, obfuscated_ports) else _UNREADABLE
    return _address(node)


def _address(host: str) -> str | None:
    if not host or host != host.strip() or host.startswith("["):
        return _UNREADABLE
    return normal_ip(host)


def _is_port(text: str, obfuscated: bool) -> bool:
    if obfuscated and _is_obfuscated(text):
        return True
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 0xFFFF


def _is_obfuscated(text: str) -> bool:
    # obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-") (§6.3)
    return len(text) > 1 and text[0] == "_" and all(c.isascii() and (c.isalnum() or c in "._-") for c in text)


# -- Forwarded (RFC 7239) ---------------------------------------------------------

def _forwarded_elements(values: list[str]) -> Iterator[dict[str, str] | None]:
    """Each element of each header in order, as its parameters by lower-case name;
    None for an element that breaks the grammar (§4). Empty elements are skipped."""
    for value in values:
        yield from _elements(value)


def _elements(value: str) -> Iterator[dict[str, str] | None]:
    params: dict[str, str] | None = {}
    empty = True  # no pair seen in this element yet
    index, size = 0, len(value)
    while True:
        index = _skip_space(value, index)
        if index >= size or value[index] == ",":
            if not empty:
                yield params
            if index >= size:
                return
            params, empty = {}, True
            index += 1
            continue
        if value[index] == ";":
            index += 1
            continue
        name_end = index
        while name_end < size and value[name_end] not in "=;,\"" and not value[name_end].isspace():
            name_end += 1
        name = value[index:name_end].lower()
        empty = False
        if name_end >= size or value[name_end] != "=" or not name:
            params, index = None, _next_element(value, name_end)
            continue
        pair_value, index = _pair_value(value, name_end + 1)
        if pair_value is None or params is None or name in params:
            # A broken value, or a parameter given twice in one element (§4 forbids it).
            params, index = None, _next_element(value, index)
            continue
        params[name] = pair_value
        index = _skip_space(value, index)
        if index < size and value[index] not in ";,":
            params, index = None, _next_element(value, index)


def _pair_value(value: str, index: int) -> tuple[str | None, int]:
    """A token or quoted-string value at `index` and the index after it; None when
    it is empty or its quotes are not closed."""
    size = len(value)
    if index < size and value[index] == '"':
        chars = []
        index += 1
        while index < size and value[index] != '"':
            if value[index] == "\\":
                index += 1
                if index >= size:
                    break
            chars.append(value[index])
            index += 1
        if index >= size:
            return None, size
        return "".join(chars), index + 1
    end = index
    while end < size and value[end] not in ";,\"" and not value[end].isspace():
        end += 1
    return (value[index:end] or None), end


def _next_element(value: str, index: int) -> int:
    """The index of the comma that ends this element (quotes respected), or the end."""
    size = len(value)
    while index < size and value[index] != ",":
        if value[index] == '"':
            index += 1
            while index < size and value[index] != '"':
                index += 2 if value[index] == "\\" else 1
        index += 1
    return min(index, size)


def _skip_space(value: str, index: int) -> int:
    while index < len(value) and value[index] in " \t":
        index += 1
    return index
