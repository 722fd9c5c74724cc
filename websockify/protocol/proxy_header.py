"""The PROXY protocol header a load balancer puts before a connection's first byte.

HAProxy, nginx (`proxy_protocol on`), AWS NLB and Envoy send it so that the server
learns the client's address instead of the balancer's. Version 1 is one text line,
`PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n`, at most 107 bytes; version 2 is a
12-byte signature, a version/command byte, a family byte, a 16-bit length and that
many bytes of addresses and TLVs (haproxy.org/download/2.9/doc/proxy-protocol.txt).

parse() reads the bytes buffered so far: None asks for more, a ProxyHeader says
how many bytes to drop before the client's own stream starts, and ProxyHeaderError
says this cannot be a header. It decides as early as the bytes allow (a wrong first
byte is enough), and never needs more than MAX_HEADER_BYTES. A decision never
changes as more bytes arrive. Addresses come back normalized: an IPv4-mapped IPv6
address as IPv4, since that is what the client's address is.
"""
from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..access_lists import IPAddress, ip_of
from .logsafe import printable

V1_SIGNATURE = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_BYTES = 107  # the spec's bound, CRLF included: "PROXY UNKNOWN" and two full IPv6 addresses
# Our bound on version 2's length field. The spec allows 65535, but what HAProxy, AWS
# (VPC endpoint id), GCP and Azure (link ids) send fits in a few hundred bytes, and a
# bound keeps a slow sender from holding a large buffer open.
V2_MAX_LENGTH = 4096 - 16
MAX_HEADER_BYTES = 16 + V2_MAX_LENGTH  # the most bytes parse() needs to decide

_V2_FIXED_BYTES = 16
_TCP_FIELDS = 4  # source, destination, source port, destination port
# Characters a TCP4/TCP6 line may hold after its protocol word: addresses, ports, spaces.
_V1_FIELD_BYTES = frozenset(b"0123456789abcdefABCDEF.: ")
_V1_PROTOCOLS = (b"TCP4", b"TCP6", b"UNKNOWN")


class ProxyHeaderError(ValueError):
    """The connection's first bytes are not a valid PROXY protocol header."""


class Command(enum.IntEnum):
    """Version 2's command: the low nibble of byte 13."""

    LOCAL = 0x0  # the balancer's own connection (a health check): use the real endpoints
    PROXY = 0x1


class Family(enum.IntEnum):
    """Version 2's address family and transport: byte 14, the values the spec defines."""

    UNSPEC = 0x00
    TCP4 = 0x11
    UDP4 = 0x12
    TCP6 = 0x21
    UDP6 = 0x22
    UNIX_STREAM = 0x31
    UNIX_DGRAM = 0x32


# Bytes of the address block that starts the variable part, by family.
_ADDRESS_BYTES = {Family.UNSPEC: 0, Family.TCP4: 12, Family.TCP6: 36, Family.UNIX_STREAM: 216}


class TlvType(enum.IntEnum):
    """Version 2 TLV types that senders use (section 2.2 and the cloud balancers' own)."""

    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    NETNS = 0x30
    GCP = 0xE0  # Google Cloud Private Service Connect id
    AWS = 0xEA  # AWS VPC endpoint id
    AZURE = 0xEE  # Azure Private Link id


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header. `source` and `destination` are (ip, port), or None where the
    header names no IP endpoints: v1 UNKNOWN, v2 LOCAL, v2 UNSPEC and v2 AF_UNIX (a
    Unix socket path is no client address); the caller then keeps the real peer."""

    length: int
    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    tlvs: tuple[tuple[int, bytes], ...] = ()

    def tlv(self, kind: int) -> bytes | None:
        """The value of the first TLV of type `kind`, or None."""
        for tlv_kind, value in self.tlvs:
            if tlv_kind == kind:
                return value
        return None


def parse(data: bytes | bytearray | memoryview) -> ProxyHeader | None:
    """The header at the start of `data`, None if more bytes are needed to tell.

    Raises ProxyHeaderError as soon as the bytes cannot start a valid header."""
    if not len(data):
        return None
    first = data[0]
    if first == V1_SIGNATURE[0]:
        return _parse_v1(bytes(data[:V1_MAX_BYTES]))
    if first == V2_SIGNATURE[0]:
        return _parse_v2(bytes(data[:MAX_HEADER_BYTES]))
    raise ProxyHeaderError("no PROXY protocol header: the connection starts with neither "
                           "'PROXY ' nor the version 2 signature")


# -- version 1 -----------------------------------------------------------------

def _parse_v1(head: bytes) -> ProxyHeader | None:
    known = min(len(head), len(V1_SIGNATURE))
    if head[:known] != V1_SIGNATURE[:known]:
        raise ProxyHeaderError("no PROXY protocol header: the connection starts with 'P' but not 'PROXY '")
    end = head.find(b"\r\n", len(V1_SIGNATURE))
    if end < 0:
        body = head[len(V1_SIGNATURE):]
        # A final CR may be the start of the CRLF: judge the line without it.
        _check_v1_start(body[:-1] if body.endswith(b"\r") else body)
        if len(head) >= V1_MAX_BYTES:
            raise ProxyHeaderError(f"PROXY v1: no CRLF within {V1_MAX_BYTES} bytes")
        return None
    body = head[len(V1_SIGNATURE):end]
    _check_v1_start(body)
    protocol, _, fields = body.partition(b" ")
    length = end + 2
    if protocol == b"UNKNOWN":
        # The spec: a receiver ignores whatever follows UNKNOWN up to the CRLF.
        return ProxyHeader(length, 1, None, None)
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"PROXY v1: unknown protocol {_shown(protocol)}")
    parts = fields.split(b" ")
    if len(parts) != _TCP_FIELDS:
        raise ProxyHeaderError(f"PROXY v1: {protocol.decode()} needs 4 fields separated by single spaces, "
                               f"found {len(parts)}")
    version = 4 if protocol == b"TCP4" else 6
    source = (_v1_address(parts[0], version, "source"), _v1_port(parts[2], "source"))
    destination = (_v1_address(parts[1], version, "destination"), _v1_port(parts[3], "destination"))
    return ProxyHeader(length, 1, source, destination)


def _check_v1_start(body: bytes) -> None:
    """Refuse a line whose start already rules it out, so that garbage is refused
    at once instead of after 107 bytes."""
    protocol, space, fields = body.partition(b" ")
    if not space and not any(name.startswith(protocol) for name in _V1_PROTOCOLS):
        raise ProxyHeaderError(f"PROXY v1: unknown protocol {_shown(protocol)}")
    if space and protocol not in _V1_PROTOCOLS:
        raise ProxyHeaderError(f"PROXY v1: unknown protocol {_shown(protocol)}")
    if protocol != b"UNKNOWN" and not _V1_FIELD_BYTES.issuperset(fields):
        raise ProxyHeaderError("PROXY v1: a character that is in no address or port")


def _v1_address(text: bytes, version: int, which: str) -> str:
    try:
        address: IPAddress = (ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address)(text.decode())
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1: {which} {_shown(text)} is not an IPv{version} address") from None
    return _normal(address)


def _v1_port(text: bytes, which: str) -> int:
    # Digits only (the field check refused signs), no leading zero, at most 65535.
    if not text.isdigit() or len(text) > 5 or (text[:1] == b"0" and len(text) > 1) or int(text) > 0xFFFF:
        raise ProxyHeaderError(f"PROXY v1: {which} port {_shown(text)} is not a number from 0 to 65535")
    return int(text)


def _shown(text: bytes) -> str:
    """A field of the header, quoted and escaped for a log line."""
    return repr(printable(text.decode("latin-1"), limit=40))


# -- version 2 -----------------------------------------------------------------

def _parse_v2(head: bytes) -> ProxyHeader | None:
    known = min(len(head), len(V2_SIGNATURE))
    if head[:known] != V2_SIGNATURE[:known]:
        raise ProxyHeaderError("no PROXY protocol header: the first bytes differ from the version 2 signature")
    if len(head) <= 12:
        return None
    version, command = head[12] >> 4, head[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY v2: unknown version {version}")
    if command not in (Command.LOCAL, Command.PROXY):
        raise ProxyHeaderError(f"PROXY v2: unknown command {command}")
    if len(head) <= 13:
        return None
    # LOCAL: the spec says the receiver ignores the family and the whole block.
    family = None if command == Command.LOCAL else _v2_family(head[13])
    if len(head) < _V2_FIXED_BYTES:
        return None
    length = int.from_bytes(head[14:16], "big")
    if length > V2_MAX_LENGTH:
        raise ProxyHeaderError(f"PROXY v2: {length} bytes of addresses and TLVs, more than our {V2_MAX_LENGTH}")
    if family is not None and length < _ADDRESS_BYTES[family]:
        raise ProxyHeaderError(f"PROXY v2: {length} bytes cannot hold the {family.name} addresses")
    total = _V2_FIXED_BYTES + length
    if len(head) < total:
        return None
    block = head[_V2_FIXED_BYTES:total]
    if family is None or family is Family.UNSPEC:
        # Unknown protocol: what follows need not even be TLVs, so skip it all.
        return ProxyHeader(total, 2, None, None)
    tlvs = _v2_tlvs(block[_ADDRESS_BYTES[family]:])
    if family is Family.TCP4:
        source = (_normal(ipaddress.IPv4Address(block[0:4])), int.from_bytes(block[8:10], "big"))
        destination = (_normal(ipaddress.IPv4Address(block[4:8])), int.from_bytes(block[10:12], "big"))
    elif family is Family.TCP6:
        source = (_normal(ipaddress.IPv6Address(block[0:16])), int.from_bytes(block[32:34], "big"))
        destination = (_normal(ipaddress.IPv6Address(block[16:32])), int.from_bytes(block[34:36], "big"))
    else:  # UNIX_STREAM: a path is no client address; keep the real peer.
        return ProxyHeader(total, 2, None, None, tlvs)
    return ProxyHeader(total, 2, source, destination, tlvs)


def _v2_family(value: int) -> Family:
    try:
        family = Family(value)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v2: unknown address family and transport 0x{value:02x}") from None
    if family not in _ADDRESS_BYTES:
        raise ProxyHeaderError(f"PROXY v2: a {family.name} (datagram) header on a stream connection")
    return family


def _v2_tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """The type-length-value fields after the addresses, which must fill the block exactly.
    Their number is bounded by V2_MAX_LENGTH / 3; values are returned unchecked (the
    CRC32C one too: TCP has checked the bytes already)."""
    tlvs = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise ProxyHeaderError("PROXY v2: a TLV cut off in its type or length")
        kind, size = data[offset], int.from_bytes(data[offset + 1:offset + 3], "big")
        offset += 3
        if offset + size > len(data):
            raise ProxyHeaderError(f"PROXY v2: TLV 0x{kind:02x} of {size} bytes runs past the header")
        tlvs.append((kind, data[offset:offset + size]))
        offset += size
    return tuple(tlvs)


def _normal(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


# -- encoding ------------------------------------------------------------------

def encode_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A version 1 line for a TCP connection: TCP4 when both addresses are IPv4
    (IPv4-mapped ones included), else TCP6 with an IPv4 address written mapped.
    Raises ValueError for an address that is not an IP or a port out of range."""
    (src, sport), (dst, dport) = _endpoints(source, destination)
    protocol = "TCP4" if src.version == dst.version == 4 else "TCP6"
    return f"PROXY {protocol} {_text(src, protocol)} {_text(dst, protocol)} {sport} {dport}\r\n".encode()


def encode_v1_unknown() -> bytes:
    """The version 1 line for a client with no IP address (a Unix socket)."""
    return b"PROXY UNKNOWN\r\n"


def encode_v2(source: tuple[str, int], destination: tuple[str, int], *,
              tlvs: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A version 2 PROXY header for a TCP connection, the family chosen as encode_v1
    does, with `tlvs` after the addresses. Raises ValueError for bad addresses, ports,
    or TLVs that do not fit."""
    (src, sport), (dst, dport) = _endpoints(source, destination)
    if src.version == dst.version == 4:
        family, addresses = Family.TCP4, src.packed + dst.packed
    else:
        family, addresses = Family.TCP6, _as_v6(src).packed + _as_v6(dst).packed
    block = addresses + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    for kind, value in tlvs:
        if not 0 <= kind <= 0xFF or len(value) > 0xFFFF:
            raise ValueError(f"TLV type {kind} or its {len(value)} bytes out of range")
        block += bytes([kind]) + len(value).to_bytes(2, "big") + bytes(value)
    if len(block) > V2_MAX_LENGTH:
        raise ValueError(f"{len(block)} bytes of addresses and TLVs, more than parse() takes")
    return V2_SIGNATURE + bytes([0x20 | Command.PROXY, family]) + len(block).to_bytes(2, "big") + block


def encode_v2_local() -> bytes:
    """The version 2 LOCAL header: no addresses, for a client with no IP address."""
    return V2_SIGNATURE + bytes([0x20 | Command.LOCAL, Family.UNSPEC]) + b"\x00\x00"


def _endpoints(source: tuple[str, int], destination: tuple[str, int]) -> list[tuple[IPAddress, int]]:
    endpoints = []
    for which, (host, port) in (("source", source), ("destination", destination)):
        address = ip_of(host)
        if address is None:
            raise ValueError(f"{which} {host!r} is not an IP address")
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"{which} port {port} is not from 0 to 65535")
        endpoints.append((address, port))
    return endpoints


def _as_v6(address: IPAddress) -> ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + address.packed)
    return address


def _text(address: IPAddress, protocol: str) -> str:
    if protocol == "TCP6" and isinstance(address, ipaddress.IPv4Address):
        return f"::ffff:{address}"
    return str(address)
