"""What every token plugin shares: the base class, the error for a store that
cannot answer, and one parser for the `host:port` targets they all return.

The contract is upstream websockify's: a plugin is built with one string,
`Class(src)`, and `lookup(token)` returns `(host, port)`,
`("unix_socket", path)`, or None for an unknown token. On top of it:

- `lookup` may be `async def`; a plain one is run on a worker thread unless
  `plugin.loop_safe` is True (it never blocks and costs microseconds). Read it
  at each lookup: TokenFile turns it off when its directory grows large.
- `TokenBackendUnavailable` means "cannot tell now" (the store is down or slow),
  as opposed to None, "no such token".
- `reload()` (re-read files, keys) and `close()`/`aclose()` are optional.
- A bad source raises ConfigError from the constructor. A source that does not
  exist yet is not bad: the plugin starts, and until it appears a lookup raises
  TokenBackendUnavailable, or returns None with `not_ready` saying why (the
  plugins where upstream returned None), and the client gets 503.
- A plugin may also define `async def alookup`: the server awaits it instead of
  calling `lookup`, unless a subclass overrides `lookup` (then its `lookup`,
  which may call `super().lookup`, is what runs).

The built-in plugins' `lookup` returns what upstream's did, for subclasses and
direct callers: `[host, "port"]` lists from files, tuples of whatever the JWT or
JSON API said. The server checks every answer with normalize_target().
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import stat
from typing import Any

from ...addresses import parse_host, parse_port
from ...errors import ConfigError, WebsockifyError
from ...protocol.logsafe import printable
from ...protocol.token_request import redact

log = logging.getLogger(__name__)

UNIX_SOCKET = "unix_socket"

# A token that names nothing usable in a directory: an unknown token, not a failure.
NO_SUCH_NAME = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG})

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_TARGET = re.compile(rf"((?:{_OCTET}\.){{3}}{_OCTET}):([0-9]{{1,5}})")

# What a log line or an error may quote of a value read from a store: store values
# and exception texts can be megabytes (issue 17: a 64 MB Redis value became two
# 67 MB log lines).
MAX_QUOTED = 80

# (host, port) for TCP, ("unix_socket", path) for a Unix socket target.
TokenTarget = tuple[str, int] | tuple[str, str]


class TokenBackendUnavailable(WebsockifyError):
    """The token store cannot answer now (down, unreachable, too slow): try later."""


class BasePlugin:
    """Upstream's base class; custom plugins subclass it and override `lookup`."""

    # Plugins written for upstream block (files, HTTP, databases): off the loop by default.
    loop_safe = False
    # Why a None from lookup() means "cannot tell yet" rather than "no such token"
    # (the source does not exist yet): the server answers 503 then, not 404.
    not_ready: str | None = None

    def __init__(self, src: str | None) -> None:
        self.source = src

    def lookup(self, token: str) -> Any:
        return None


def upstream_target(target: TokenTarget) -> list[str]:
    """A parsed target as upstream's file plugins returned it: `[host, "port"]`."""
    return [target[0], str(target[1])]


def require_source(src: str | None, plugin: str, expected: str) -> str:
    if not src:
        raise ConfigError(f"--token-plugin {plugin} needs --token-source {expected}")
    return src


def missing_library(plugin: str, package: str, extra: str) -> ConfigError:
    return ConfigError(f"--token-plugin {plugin} needs the {package} package: "
                       f"pip install 'websockify[{extra}]'")


def token_hint(token: str) -> str:
    """What the log may show of a token: enough to tell two apart, not enough to use one."""
    return printable(redact(token))


def shorten(text: object, limit: int = MAX_QUOTED) -> str:
    """`text` (an exception, a value) cut to `limit` characters, saying how long it was."""
    shown = str(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(shown)} characters)"


def _quoted(text: str) -> str:
    return repr(text) if len(text) <= MAX_QUOTED else f"{text[:MAX_QUOTED]!r}... ({len(text)} characters)"


def parse_target(text: str) -> TokenTarget:
    """`host:port`, `[v6]:port`, a bare `v6:port` (upstream accepted it) or
    `unix_socket:/absolute/path`; ValueError with a short reason otherwise."""
    text = text.strip()
    if text.startswith(UNIX_SOCKET + ":"):
        path = text[len(UNIX_SOCKET) + 1:]
        if not path.startswith("/") or "\0" in path:
            raise ValueError(f"unix_socket target {_quoted(path)} is not an absolute path")
        return UNIX_SOCKET, path
    quick = _IPV4_TARGET.fullmatch(text)
    if quick and 0 < int(quick.group(2)) < 65536:
        return quick.group(1), int(quick.group(2))  # the common case, 20 times quicker than ipaddress
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"target {_quoted(text)} is not HOST:PORT")
    if ":" in host and not host.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"target {_quoted(text)} is not HOST:PORT") from None
        host = f"[{host}]"
    try:
        return parse_host(host, "target"), parse_port(port_text.strip(), "target")
    except ConfigError as exc:
        raise ValueError(shorten(exc, 2 * MAX_QUOTED)) from None


def normalize_target(result: Any) -> TokenTarget | None:
    """A plugin's answer in one shape: `(str host, int port)` or `("unix_socket", str)`.

    Upstream plugins return lists, ports as str or bytes, IPv6 hosts in brackets;
    all of that is accepted. Anything else raises ValueError (a broken plugin).
    """
    if result is None:
        return None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise ValueError(f"token plugin returned {type(result).__name__}, not (host, port)")
    host, port = (item.decode("utf-8") if isinstance(item, (bytes, bytearray)) else item for item in result)
    if host == UNIX_SOCKET:
        path = str(port) if hasattr(port, "__fspath__") else port
        if not isinstance(path, str) or not path:
            raise ValueError("token plugin returned a unix_socket target without a path")
        return UNIX_SOCKET, path
    if not isinstance(host, str):
        raise ValueError(f"token plugin returned a host of type {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise ValueError(f"token plugin returned a port of type {type(port).__name__}")
    bare = host.strip()
    if ":" in bare and not bare.startswith("["):
        bare = f"[{bare}]"
    try:
        return parse_host(bare, "target"), parse_port(str(port).strip(), "target")
    except ConfigError as exc:
        raise ValueError(f"token plugin returned {exc}") from None


class DirectoryPlugin(BasePlugin):
    """A plugin whose source is a directory, resolved at start, on reload, and at
    a lookup while it is missing: a directory that does not exist yet (a unit
    started before whatever creates it) makes the plugin wait, not fail."""

    def __init__(self, src: str | None) -> None:
        super().__init__(require_source(src, type(self).__name__, "DIRECTORY"))
        self._directory: str | None = None
        if self._resolve() is None:
            log.warning("--token-source %s does not exist yet: clients get 503 until it does", self.source)

    def reload(self) -> None:
        self._resolve()

    def directory(self) -> str | None:
        """The resolved directory, or None (and `not_ready` set) while it does not exist."""
        return self._directory if self._directory is not None else self._resolve()

    def missed(self) -> None:
        """A name was not found: if the directory itself went away, say so (503, not 404)."""
        if self._directory is not None and not os.path.isdir(self._directory):
            self._resolve()

    def _resolve(self) -> str | None:
        directory = os.path.realpath(str(self.source))
        try:
            is_directory = stat.S_ISDIR(os.stat(directory).st_mode)
        except FileNotFoundError:
            self._directory = None
            self.not_ready = f"token directory {self.source} does not exist"
            return None
        except OSError as exc:
            raise ConfigError(f"--token-source: {self.source}: {exc.strerror}") from None
        if not is_directory:
            raise ConfigError(f"--token-source: {type(self).__name__} needs a directory; {self.source} is not one")
        self._directory, self.not_ready = directory, None
        return directory


def is_plain_name(token: str) -> bool:
    """True when `token` can only name an entry directly inside a directory."""
    return bool(token) and token not in (".", "..") and "/" not in token and "\0" not in token


def is_inside(path: str, directory: str) -> bool:
    """`path` lies in `directory`'s tree; both already resolved with realpath.
    A sibling sharing a prefix (`/run/socks2` for `/run/socks`) is outside."""
    return os.path.commonpath([path, directory]) == directory and path != directory
