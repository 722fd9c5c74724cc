"""Loading plugins by class name, and running the auth plugin for one request."""
from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional

from ..errors import ConfigError, HttpError
from . import auth_plugins


def load_plugin(name: str, source: Optional[str], builtins: ModuleType, option: str) -> Any:
    """`Class` from `builtins`, or `package.module.Class`; built with `source`."""
    module_name, _, class_name = name.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else builtins
        plugin_class = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{option}: cannot load {name}: {exc}") from None
    try:
        return plugin_class(source)
    except Exception as exc:  # a plugin's constructor may raise anything: report it in one line
        raise ConfigError(f"{option}: {name}: {exc}") from None


@dataclass
class Authenticator:
    plugin: Any
    target_host: Optional[str]
    target_port: Optional[int]

    async def check(self, headers: Any) -> None:
        """Raise HttpError when the plugin refuses the request (see protocol.http.auth_headers)."""
        try:
            await asyncio.to_thread(self.plugin.authenticate, headers, self.target_host, self.target_port)
        except auth_plugins.AuthenticationError as exc:
            raise HttpError(exc.code, exc.msg or "authentication failed",
                            tuple(exc.headers.items()), log_message=str(exc)) from None


def load_authenticator(name: str, source: Optional[str], target_host: Optional[str],
                       target_port: Optional[int]) -> Authenticator:
    return Authenticator(load_plugin(name, source, auth_plugins, "--auth-plugin"), target_host, target_port)
