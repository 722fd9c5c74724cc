"""Token plugins: classes that map the token of a request to a target.

`websockify.token_plugins` re-exports them under upstream's names; see
`base` for the contract.
"""
from .api import BaseTokenAPI, JSONTokenApi
from .base import (
                   UNIX_SOCKET,
                   BasePlugin,
                   TokenBackendUnavailable,
                   TokenTarget,
                   normalize_target,
                   parse_target,
                   token_hint,
)
from .files import ReadOnlyTokenFile, TokenFile, TokenFileName
from .jwtapi import JWTTokenApi
from .redisdb import TokenRedis, parse_source_args
from .unixdir import UnixDomainSocketDirectory

__all__ = [
    "UNIX_SOCKET", "BasePlugin", "BaseTokenAPI", "JSONTokenApi", "JWTTokenApi", "ReadOnlyTokenFile",
    "TokenBackendUnavailable", "TokenFile", "TokenFileName", "TokenRedis", "TokenTarget",
    "UnixDomainSocketDirectory", "normalize_target", "parse_source_args", "parse_target", "token_hint",
]
