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
compared in constant time. The headers a plugin gets are an
`http.client.HTTPMessage`, as upstream's: `headers["Missing"]` is None.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any, Mapping


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
    """Upstream's base class: custom plugins written for upstream subclass it.

    `needs_target`, read from the class that defines `authenticate`: True (the
    default, as upstream) when the plugin reads `target_host`/`target_port`, so
    with token routing the token is looked up first and the plugin gets its
    target; False when it does not, so it runs before the lookup and an
    unauthenticated client costs none, and gets None, None.
    """

    needs_target = True

    def __init__(self, src: str | None = None):
        self.source: Any = src  # upstream's plugins keep what they need here, parsed or not

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        pass


class BasicHTTPAuth(BasePlugin):
    """`--auth-source user:password`: HTTP Basic authentication with one credential.

    Upstream's class, with its override points: `validate_creds(username,
    password)` (htpasswd-style subclasses replace it), `demand_auth()` (401),
    `auth_error()` (403), and `self.src`. `authenticate` relies on nothing set
    in `__init__`, so a subclass with its own `__init__` works.
    """

    needs_target = False

    def __init__(self, src: str | None = None):
        super().__init__(src)
        self.src = src

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        header = headers.get("Authorization")
        if not header:
            self.demand_auth()
            raise _fell_through("demand_auth")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":  # RFC 7235: the scheme is case-insensitive (upstream: "Basic " only)
            self.auth_error()
            raise _fell_through("auth_error")
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):  # upstream caught TypeError only: a 500 for bad padding
            self.auth_error()
            raise _fell_through("auth_error") from None
        try:
            text = raw.decode("utf-8")  # what browsers send today
        except UnicodeDecodeError:
            text = raw.decode("iso-8859-1")  # upstream's reading, which never fails
        username, colon, password = text.partition(":")
        if not colon:
            self.auth_error()
            raise _fell_through("auth_error")
        if not self.validate_creds(username, password):
            self.demand_auth()
            raise _fell_through("demand_auth")

    def validate_creds(self, username: str, password: str) -> bool:
        """True when `username:password` is `src`, compared in constant time."""
        expected = getattr(self, "src", None)
        if not isinstance(expected, str):
            return False  # BasicHTTPAuth(None), as upstream: nobody gets in
        return hmac.compare_digest(f"{username}:{password}".encode("utf-8"), expected.encode("utf-8"))

    def auth_error(self) -> None:
        raise AuthenticationError(response_code=403, response_msg="Malformed credentials")

    def demand_auth(self) -> None:
        raise AuthenticationError(response_code=401, response_msg="Authentication required",
                                  response_headers={"WWW-Authenticate": 'Basic realm="Websockify"'})


def _fell_through(method: str) -> AuthenticationError:
    """An override of `method` returned instead of raising: refuse anyway (fail closed)."""
    return AuthenticationError(log_msg=f"{method}() returned without refusing; refused", response_code=403)


class ExpectOrigin(BasePlugin):
    """`--auth-source "https://a.example https://b.example"`: only pages from these origins."""

    needs_target = False

    def __init__(self, src: str | None = None):
        self.source = (src or "").split()

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        origin = headers.get("Origin")
        if origin is None or origin not in self.source:
            raise InvalidOriginError(expected=self.source, actual=origin)


class ClientCertCNAuth(BasePlugin):
    """`--auth-source "alice bob"`: TLS client certificates with one of these common names."""

    needs_target = False

    def __init__(self, src: str | None = None):
        self.source = (src or "").split()

    def authenticate(self, headers: Mapping[str, str], target_host: str | None,
                     target_port: int | None) -> None:
        if headers.get("SSL_CLIENT_S_DN_CN", "") not in self.source:
            raise AuthenticationError(response_code=403)
