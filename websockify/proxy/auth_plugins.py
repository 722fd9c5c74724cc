"""Authentication plugins, with upstream websockify's contract.

A plugin is a class built with one string (`--auth-source`) whose
`authenticate(headers, target_host, target_port)` returns to accept the client
or raises `AuthenticationError` to refuse it with an HTTP status. Custom
plugins are named `package.module.Class`; a bare name is one of the classes
here. Plugins run on a worker thread, so a slow one cannot stall the relay.

Differences from upstream, on purpose: headers whose name starts with `SSL_`
in any letter case are removed before the plugin sees them, and
`SSL_CLIENT_S_DN_CN` is only ever the CN of a verified TLS client certificate
(upstream's case-sensitive clean-up let a client forge it). Credentials are
compared in constant time.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any, Mapping, NoReturn


class AuthenticationError(Exception):
    def __init__(self, log_msg: str | None = None, response_code: int = 403,
                 response_headers: Mapping[str, str] | None = None, response_msg: str | None = None):
        self.code = response_code
        self.headers = dict(response_headers or {})
        self.msg = response_msg
        if log_msg is None:
            log_msg = response_msg
        super().__init__(f"{self.code} {log_msg}")


class InvalidOriginError(AuthenticationError):
    def __init__(self, expected: object, actual: object):
        self.expected_origin = expected
        self.actual_origin = actual
        super().__init__(response_msg="Invalid Origin",
                         log_msg=f"Invalid Origin Header: Expected one of {expected}, got '{actual}'")


class BasePlugin:
    """Upstream's base class: custom plugins written for upstream subclass it."""

    def __init__(self, src: str | None = None):
        self.source: Any = src  # upstream's plugins keep what they need here, parsed or not

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        pass


class BasicHTTPAuth(BasePlugin):
    """`--auth-source user:password`: HTTP Basic authentication with one credential."""

    def __init__(self, src: str | None = None):
        if not src or ":" not in src:
            raise ValueError("BasicHTTPAuth needs --auth-source USER:PASSWORD")
        self._expected = src.encode("utf-8")

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        header = headers.get("Authorization")
        if header is None:
            self._demand()
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise AuthenticationError(response_code=403, response_msg="Unsupported authorization scheme")
        try:
            credentials = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthenticationError(response_code=403, response_msg="Malformed credentials") from None
        if b":" not in credentials:
            raise AuthenticationError(response_code=403, response_msg="Malformed credentials")
        if not hmac.compare_digest(credentials, self._expected):
            self._demand()

    @staticmethod
    def _demand() -> NoReturn:
        raise AuthenticationError(response_code=401, response_msg="Authentication required",
                                  response_headers={"WWW-Authenticate": 'Basic realm="Websockify"'})


class ExpectOrigin(BasePlugin):
    """`--auth-source "https://a.example https://b.example"`: only pages from these origins."""

    def __init__(self, src: str | None = None):
        self.source = (src or "").split()

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        origin = headers.get("Origin")
        if origin is None or origin not in self.source:
            raise InvalidOriginError(expected=self.source, actual=origin)


class ClientCertCNAuth(BasePlugin):
    """`--auth-source "alice bob"`: TLS client certificates with one of these common names."""

    def __init__(self, src: str | None = None):
        self.source = (src or "").split()

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        if headers.get("SSL_CLIENT_S_DN_CN", "") not in self.source:
            raise AuthenticationError(response_code=403)
