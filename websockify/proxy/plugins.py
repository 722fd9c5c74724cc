"""Loading plugins by class name, and running the auth plugin for one request.

The auth plugin runs on its own threads with a budget: AUTH_BUDGET calls
unfinished at once, abandoned ones (past the client's deadline, still running
since a thread cannot be killed) included. Past it a client gets 503 at once;
capacity returns as the calls finish. Whatever the plugin raises, SystemExit
and KeyboardInterrupt included, is its failure (500), never the process's end.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..errors import ConfigError, HttpError
from ..protocol.logsafe import printable
from . import auth_plugins
from .lookup_threads import CallRaised, CallTimedOut, LookupThreads, OverBudget

log = logging.getLogger(__name__)

# Blocking auth calls at once; a stuck plugin holds one of them, not the loop.
AUTH_WORKERS = 8
# Auth calls unfinished at once (queued or running, abandoned ones included).
AUTH_BUDGET = AUTH_WORKERS


def load_plugin(name: str, source: str | None, builtins: "ModuleType | str", option: str) -> Any:
    """`Class` from `builtins` (a module, or its name: imported only for a bare
    class name), or `package.module.Class`; built with `source`."""
    module_name, _, class_name = name.rpartition(".")
    if not module_name and isinstance(builtins, str):
        module_name = builtins
    try:
        module = importlib.import_module(module_name) if module_name else builtins
        plugin_class = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{option}: cannot load {name}: {exc}") from None
    try:
        return plugin_class(source)
    except ConfigError:
        raise  # already one line a user can act on
    except Exception as exc:  # a plugin's constructor may raise anything: report it in one line
        raise ConfigError(f"{option}: {name}: {exc}") from None


@dataclass
class Authenticator:
    plugin: Any
    target_host: str | None
    target_port: int | None
    workers: LookupThreads = field(default_factory=lambda: LookupThreads(AUTH_WORKERS, "auth", budget=AUTH_BUDGET))

    async def check(self, headers: Any, timeout_s: float) -> None:
        """Raise HttpError when the plugin refuses the request (see protocol.http.auth_headers)
        or does not answer in time; any other exception is the plugin's own failure."""
        try:
            await self.workers.run(self.plugin.authenticate, headers, self.target_host, self.target_port,
                                   timeout_s=timeout_s)
        except auth_plugins.AuthenticationError as exc:
            raise HttpError(exc.code, exc.msg or "authentication failed",
                            tuple(exc.headers.items()), log_message=str(exc)) from None
        except OverBudget as exc:
            raise HttpError(503, "authentication unavailable", log_message=f"auth plugin busy: {exc}") from None
        except CallTimedOut as exc:
            raise HttpError(503, "authentication timed out", log_message=f"auth plugin: {exc}") from None
        except CallRaised as exc:
            log.error("the auth plugin failed: %s", printable(str(exc)), exc_info=exc.raised)
            raise HttpError(500, "authentication failed", log_message=f"auth plugin: {exc}") from None


def load_authenticator(name: str, source: str | None, target_host: str | None,
                       target_port: int | None) -> Authenticator:
    return Authenticator(load_plugin(name, source, auth_plugins, "--auth-plugin"), target_host, target_port)
