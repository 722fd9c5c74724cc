"""Upstream's module path for auth plugins: `websockify.auth_plugins.BasicHTTPAuth`
and custom plugins importing AuthenticationError from here keep working."""
from .proxy.auth_plugins import (  # noqa: F401
                                 AuthenticationError,
                                 BasePlugin,
                                 BasicHTTPAuth,
                                 ClientCertCNAuth,
                                 ExpectOrigin,
                                 InvalidOriginError,
)
