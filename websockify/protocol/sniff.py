"""Classify a connection by its first bytes, so one port can serve every kind of client.

TLS starts with a handshake record (0x16) or an SSLv2-style hello (high bit set,
0x80); Flash asks for its policy with a fixed string; HTTP starts with a method
token. A load balancer's PROXY header (v1 `PROXY `, or v2's signature) is told
apart, so that a listener without --proxy-protocol can say what it got. Anything
else is garbage and is dropped.
"""
from __future__ import annotations

import enum

FLASH_POLICY_REQUEST = b"<policy-file-request/>\x00"
_PROXY_STARTS = (b"PROXY ", b"\r\n\r\n\x00\r\nQUIT\n")  # HAProxy's v1 and v2
_TLS_FIRST_BYTES = (0x16, 0x80)


class Kind(enum.Enum):
    TLS = "tls"
    FLASH_POLICY = "flash-policy"
    HTTP = "http"
    NEED_MORE = "need-more"
    UNKNOWN = "unknown"
    PROXY_HEADER = "a PROXY protocol header, and --proxy-protocol is off"


def sniff(data: bytes) -> Kind:
    """Decide what the client speaks from the bytes seen so far."""
    if not data:
        return Kind.NEED_MORE
    if data[0] in _TLS_FIRST_BYTES:
        return Kind.TLS
    for start in _PROXY_STARTS:
        if data.startswith(start):
            return Kind.PROXY_HEADER
        if start.startswith(data):
            return Kind.NEED_MORE
    if data[0:1] == b"<":
        if data.startswith(FLASH_POLICY_REQUEST):
            return Kind.FLASH_POLICY
        if FLASH_POLICY_REQUEST.startswith(data):
            return Kind.NEED_MORE
        return Kind.UNKNOWN
    return Kind.HTTP if starts_like_http(data) else Kind.UNKNOWN


def starts_like_http(data: bytes) -> bool:
    """An upper-case letter first, as every HTTP method (RFC 9112 §3): enough to answer a
    plain client in HTTP even when only its first byte is known."""
    return bool(data) and 0x41 <= data[0] <= 0x5A


def flash_policy_response(port: int) -> bytes:
    """The cross-domain policy that lets a Flash client talk to this port."""
    return (
        '<?xml version="1.0"?><cross-domain-policy>'
        f'<allow-access-from domain="*" to-ports="{port}" />'
        "</cross-domain-policy>\x00"
    ).encode("ascii")
