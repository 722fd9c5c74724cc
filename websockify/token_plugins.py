"""Upstream's module path for token plugins: `--token-plugin TokenFile` and custom
plugins doing `from websockify.token_plugins import BasePlugin` keep working."""
from .proxy.tokens import (  # noqa: F401
                           BasePlugin,
                           BaseTokenAPI,
                           JSONTokenApi,
                           JWTTokenApi,
                           ReadOnlyTokenFile,
                           TokenBackendUnavailable,
                           TokenFile,
                           TokenFileName,
                           TokenRedis,
                           UnixDomainSocketDirectory,
                           parse_source_args,
)
