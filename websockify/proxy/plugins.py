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

from ..addresses import TcpAddress, UnixAddress
from ..errors import ConfigError, HttpError, Refusal
from ..protocol.logsafe import printable
from . import auth_plugins
from .lookup_threads import CallRaised, CallTimedOut, LookupThreads, OverBudget
from .tokens.base import UNIX_SOCKET

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


# What an auth plugin gets as target_host, target_port: `(host, port)`, or
# `("unix_socket", path)` as upstream passed a token plugin's Unix socket answer.
PluginTarget = tuple[str, int | str]


def plugin_target(connector: object) -> PluginTarget | None:
    """The target a token chose, from its connector, in the shape an auth plugin gets it."""
    address = getattr(connector, "address", None)
    if isinstance(address, TcpAddress):
        return address.host, address.port
    if isinstance(address, UnixAddress):
        return UNIX_SOCKET, address.path
    return None


def needs_target(plugin: Any) -> bool:
    """The `needs_target` of the class that defines the plugin's `authenticate`
    (True if it says nothing): an override of `authenticate` in a subclass may
    read the target even when its base declared it does not."""
    for cls in type(plugin).__mro__:
        if "authenticate" in vars(cls):
            return bool(vars(cls).get("needs_target", True))
    return True


@dataclass
class Authenticator:
    plugin: Any
    target_host: str | None  # the command line's target; a token's replaces it
    target_port: int | None
    workers: LookupThreads = field(default_factory=lambda: LookupThreads(AUTH_WORKERS, "auth", budget=AUTH_BUDGET))
    needs_target: bool = field(init=False)

    def __post_init__(self) -> None:
        self.needs_target = needs_target(self.plugin)

    async def check(self, headers: Any, timeout_s: float, target: PluginTarget | None = None) -> None:
        """Raise HttpError when the plugin refuses the request (see protocol.http.auth_headers)
        or does not answer in time; any other exception is the plugin's own failure.
        `target` is the one a token chose, `(host, port)` or `("unix_socket", path)`."""
        host, port = target if target is not None else (self.target_host, self.target_port)
        try:
            await self.workers.run(self.plugin.authenticate, headers, host, port, timeout_s=timeout_s)
        except auth_plugins.AuthenticationError as exc:
            raise HttpError(exc.code, exc.msg or "authentication failed",
                            tuple(exc.headers.items()), log_message=str(exc), reason=Refusal.AUTH) from None
        except OverBudget as exc:
            raise HttpError(503, "authentication unavailable", log_message=f"auth plugin busy: {exc}",
                            reason=Refusal.AUTH) from None
        except CallTimedOut as exc:
            raise HttpError(503, "authentication timed out", log_message=f"auth plugin: {exc}",
                            reason=Refusal.AUTH) from None
        except CallRaised as exc:
            log.error("the auth plugin failed: %s", printable(str(exc)), exc_info=exc.raised)
            raise HttpError(500, "authentication failed", log_message=f"auth plugin: {exc}",
                            reason=Refusal.AUTH) from None


def load_authenticator(name: str, source: str | None, target_host: str | None,
                       target_port: int | None) -> Authenticator:
    plugin = load_plugin(name, source, auth_plugins, "--auth-plugin")
    if (isinstance(plugin, auth_plugins.BasicHTTPAuth)
            and type(plugin).validate_creds is auth_plugins.BasicHTTPAuth.validate_creds
            and ":" not in str(getattr(plugin, "src", None) or "")):
        # Upstream started and refused every client; a subclass with its own
        # validate_creds may need no source at all.
        raise ConfigError(f"--auth-plugin {name} needs --auth-source USER:PASSWORD")
    return Authenticator(plugin, target_host, target_port)
