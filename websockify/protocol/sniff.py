"""Classify a connection by its first bytes, so one port can serve every kind of client.

TLS starts with a handshake record (0x16) or an SSLv2-style hello (high bit set,
0x80); Flash asks for its policy with a fixed string; HTTP starts with a method
token. Anything else is garbage and is dropped.
"""
from __future__ import annotations

import enum

FLASH_POLICY_REQUEST = b"<policy-file-request/>\x00"
_TLS_FIRST_BYTES = (0x16, 0x80)


class Kind(enum.Enum):
    TLS = "tls"
    FLASH_POLICY = "flash-policy"
    HTTP = "http"
    NEED_MORE = "need-more"
    UNKNOWN = "unknown"


def sniff(data: bytes) -> Kind:
    """Decide what the client speaks from the bytes seen so far."""
    if not data:
        return Kind.NEED_MORE
    if data[0] in _TLS_FIRST_BYTES:
        return Kind.TLS
    if data[0:1] == b"<":
        if data.startswith(FLASH_POLICY_REQUEST):
            return Kind.FLASH_POLICY
        if FLASH_POLICY_REQUEST.startswith(data):
            return Kind.NEED_MORE
        return Kind.UNKNOWN
    # An HTTP request line starts with a method token (RFC 9112 §3).
    if 0x41 <= data[0] <= 0x5A:
        return Kind.HTTP
    return Kind.UNKNOWN


def flash_policy_response(port: int) -> bytes:
    """The cross-domain policy that lets a Flash client talk to this port."""
    return (
        '<?xml version="1.0"?><cross-domain-policy>'
        f'<allow-access-from domain="*" to-ports="{port}" />'
        "</cross-domain-policy>\x00"
    ).encode("ascii")
