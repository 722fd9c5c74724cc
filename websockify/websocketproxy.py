"""Upstream's module for scripts that embed websockify or call its entry point.

- `websockify_init()`: what distribution launchers and old console scripts call;
  it runs our command line (arguments from sys.argv).
- `WebSocketProxy(listen_host=..., listen_port=..., target_host=..., ...)
  .start_server()`: runs a server from Python with upstream's keyword names.
  Supported keywords are listed in `KEYWORDS`; `token_plugin` and `auth_plugin`
  may be a class name (as on the command line) or an object built already (as
  upstream's own `websockify_init` passed them). Anything else is a TypeError
  naming it. Subclassing upstream's request handler is not supported: there is
  none; write a token or auth plugin instead.
"""
from __future__ import annotations

from typing import Any

from .addresses import format_host_port

# upstream keyword → our build_config parameter (None: handled below)
KEYWORDS: dict[str, str | None] = {
    "listen_host": None, "listen_port": None, "target_host": None, "target_port": None,
    "wrap_cmd": None, "source_is_ipv6": "prefer_ipv6", "verbose": "verbose", "daemon": "daemon",
    "traffic": "traffic", "record": "record", "run_once": "run_once", "timeout": "timeout_s",
    "idle_timeout": "idle_timeout_s", "heartbeat": "heartbeat_s", "cert": "cert", "key": "key",
    "key_password": "key_password", "ssl_only": "ssl_only", "ssl_target": "ssl_target",
    "verify_client": "verify_client", "cafile": "cafile", "ssl_ciphers": "ssl_ciphers",
    "ssl_options": None, "ssl_version": "ssl_version", "unix_listen": "unix_listen",
    "unix_listen_mode": "unix_listen_mode", "unix_target": "unix_target", "inetd": "inetd",
    "web": "web", "web_auth": "web_auth", "file_only": "file_only", "wrap_mode": "wrap_mode",
    "token_plugin": None, "token_source": "token_source", "host_token": "host_token",
    "auth_plugin": None, "auth_source": "auth_source", "log_file": "log_file", "syslog": "syslog",
    "legacy_syslog": "legacy_syslog",
}


def websockify_init() -> None:
    """Upstream's console entry point: our command line."""
    from .cli import main
    main()


class WebSocketProxy:
    """Upstream's server object, with its keyword names; `start_server()` runs until stopped."""

    def __init__(self, **kwargs: Any):
        unknown = sorted(set(kwargs) - set(KEYWORDS))
        if unknown:
            raise TypeError(f"WebSocketProxy: unsupported keyword(s): {', '.join(unknown)}")
        self._kwargs = kwargs

    def _config_and_plugins(self) -> tuple[Any, Any, Any]:
        from .config import build_config

        kwargs = dict(self._kwargs)
        options: dict[str, Any] = {}
        for keyword, value in kwargs.items():
            parameter = KEYWORDS[keyword]
            if parameter is not None and value is not None:
                options[parameter] = value
        if isinstance(options.get("unix_listen_mode"), int):
            options["unix_listen_mode"] = format(options["unix_listen_mode"], "o")
        arguments: list[str] = []
        if kwargs.get("listen_port") is not None:
            arguments.append(format_host_port(kwargs.get("listen_host") or "", int(kwargs["listen_port"]))
                             if kwargs.get("listen_host") else str(kwargs["listen_port"]))
        if kwargs.get("target_host") and kwargs.get("target_port"):
            arguments.append(format_host_port(kwargs["target_host"], int(kwargs["target_port"])))
        plugins = {}
        for name in ("token_plugin", "auth_plugin"):
            value = kwargs.get(name)
            if isinstance(value, str):
                options[name] = value
            elif value is not None:
                options[name] = f"{type(value).__module__}.{type(value).__qualname__}"
                plugins[name] = value
        config = build_config(arguments=tuple(arguments), wrap_command=tuple(kwargs.get("wrap_cmd") or ()),
                              **options)
        return config, plugins.get("token_plugin"), plugins.get("auth_plugin")

    def start_server(self) -> int:
        """Run until stopped (SIGTERM/SIGINT or a lifetime option); the exit code."""
        from .app import run

        config, token_plugin, auth_plugin = self._config_and_plugins()
        return run(config, token_plugin=token_plugin, auth_plugin=auth_plugin)
