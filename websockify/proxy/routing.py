"""Token routing: one port, many targets, chosen per client by a token plugin.

The plugin contract is upstream's: `Class(source)`, `lookup(token)` returning
`(host, port)`, `("unix_socket", path)` or None. How a lookup is run:

- `async def lookup`, or `async def alookup` that no subclass's `lookup`
  overrides (TokenRedis): awaited on the event loop;
- `loop_safe` true (a table lookup plus a stat), read at each lookup since a
  token directory may grow past what is cheap: called on the loop directly, so
  a token file costs no thread hop per connection;
- otherwise (upstream's plugins, HTTP APIs): on a worker thread, with a timeout,
  so one slow lookup never stalls other clients.

What a client gets: unknown token → 404; the plugin's backend is down or slow
→ 503; the plugin raised or returned something malformed → 500 and a log line
with the exception. Never a hang, never a dead process: whatever a plugin
raises (SystemExit and KeyboardInterrupt included) is its failure, 500, unless
it is the task's own cancellation. Threaded lookups have a budget
(LOOKUP_BUDGET calls unfinished, abandoned ones included): past it a lookup gets
503 at once instead of queueing behind a backend that does not answer. An
address that asked for too many unknown tokens gets 429 (guess_limit.py), and a
token whose target is our own listening address gets the client 1011
(own_address.py), not a session that proxies to itself.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
import time
from typing import Any, Awaitable, Callable, cast

from ..addresses import Target, TcpAddress, UnixAddress
from ..errors import ConfigError, HttpError, Refusal, TargetUnavailable
from ..metrics import meter
from ..protocol.logsafe import printable
from ..protocol.token_request import redact
from ..service.log_throttle import ThrottledLog
from .guess_limit import GuessLimit, retry_after_header
from .lookup_threads import CallTimedOut, LookupThreads, OverBudget
from .own_address import OwnListeners
from .plugins import load_plugin
from .target import AddressConnector
from .tokens.base import UNIX_SOCKET, TokenBackendUnavailable, normalize_target, shorten

log = logging.getLogger(__name__)

LOOKUP_WORKERS = 16
# Threaded lookups unfinished at once (queued or running, abandoned ones included).
LOOKUP_BUDGET = LOOKUP_WORKERS
_CACHED_CONNECTORS = 4096


def load_token_plugin(name: str, source: str | None) -> Any:
    """A built-in from websockify.token_plugins, or the user's `package.module.Class`."""
    return load_plugin(name, source, "websockify.token_plugins", "--token-plugin")


class TokenRouter:
    def __init__(self, plugin: Any, connect_timeout_s: float, tls: ssl.SSLContext | None):
        self.plugin = plugin
        self._connect_timeout_s = connect_timeout_s
        self._tls = tls
        self._awaited = awaited_lookup(plugin)
        self._coroutine = self._awaited is not None
        self._workers = LookupThreads(LOOKUP_WORKERS, "token", budget=LOOKUP_BUDGET)
        self._connectors: dict[Target, AddressConnector] = {}
        self.guesses = GuessLimit(time.monotonic)
        self._guesses_refused = ThrottledLog(log, logging.INFO, "token requests refused: too many unknown tokens",
                                             time.monotonic)
        self.own: OwnListeners | None = None  # set once we listen: a token may not lead back to us

    @property
    def immediate(self) -> bool:
        """The next lookup can run on the loop, now."""
        return not self._coroutine and bool(getattr(self.plugin, "loop_safe", False))

    def resolve_now(self, token: str, client: str = "") -> AddressConnector:
        """For a loop-safe plugin: the connector for the token's target, or HttpError.
        `client` is the address key the guess limit counts unknown tokens by."""
        self._check_guesses(client)
        began = time.monotonic()
        try:
            result = self.plugin.lookup(token)
        except BaseException as exc:  # SystemExit too: a plugin never ends the process
            raise self._failure(token, exc) from None
        finally:
            meter().token_looked_up(time.monotonic() - began)
        return self._connector(token, result, client)

    async def resolve(self, token: str, timeout_s: float, client: str = "") -> AddressConnector:
        self._check_guesses(client)
        began = time.monotonic()
        try:
            if self._coroutine:
                assert self._awaited is not None
                async with asyncio.timeout(timeout_s):
                    result = await self._awaited(token)
            elif getattr(self.plugin, "loop_safe", False):
                result = self.plugin.lookup(token)
            else:
                result = await self._workers.run(self.plugin.lookup, token, timeout_s=timeout_s)
        except OverBudget as exc:
            raise HttpError(503, "token lookup unavailable", reason=Refusal.TOKEN_LOOKUP,
                            log_message=f"token {redact(token)}: the token plugin is busy: {exc}") from None
        except (TimeoutError, CallTimedOut):
            raise HttpError(503, "token lookup timed out", reason=Refusal.TOKEN_LOOKUP,
                            log_message=f"token {redact(token)}: the lookup took longer than {timeout_s:.1f}s") from None
        except asyncio.CancelledError as exc:
            if _cancelling():
                raise  # the task's own cancellation, not the plugin's doing
            raise self._failure(token, exc) from None
        except BaseException as exc:  # SystemExit too: a plugin never ends the process
            raise self._failure(token, exc) from None
        finally:
            if not _cancelling():  # timed out or failed: how long it was given; the client gone: nothing
                meter().token_looked_up(time.monotonic() - began)
        return self._connector(token, result, client)

    def _check_guesses(self, client: str) -> None:
        wait_s = self.guesses.retry_after_s(client)
        if wait_s:
            self._guesses_refused("%s: token requests refused for %.0f s: too many unknown tokens", client, wait_s)
            raise HttpError(429, "too many unknown tokens", retry_after_header(wait_s), quiet=True,
                            reason=Refusal.TOKEN_UNKNOWN)

    def _failure(self, token: str, exc: BaseException) -> HttpError:
        if isinstance(exc, TokenBackendUnavailable):
            return HttpError(503, "token lookup unavailable", log_message=f"token {redact(token)}: {printable(exc)}",
                             reason=Refusal.TOKEN_LOOKUP)
        log.error("token %s: the token plugin failed", printable(redact(token)), exc_info=exc)
        return HttpError(500, "token lookup failed", reason=Refusal.TOKEN_LOOKUP,
                         log_message=f"token {redact(token)}: plugin error {shorten(repr(exc))}")

    def _connector(self, token: str, result: Any, client: str) -> AddressConnector:
        try:
            normal = normalize_target(result)
        except ValueError as exc:
            log.error("token %s: %s (%s)", printable(redact(token)), printable(shorten(str(exc))),
                      printable(shorten(repr(result))))
            raise HttpError(500, "token lookup failed", log_message=f"token {redact(token)}: malformed result",
                            reason=Refusal.TOKEN_LOOKUP) from None
        if normal is None:
            not_ready = getattr(self.plugin, "not_ready", None)
            if not_ready:  # its source does not exist yet: not the client's guess
                raise HttpError(503, "token lookup unavailable", reason=Refusal.TOKEN_LOOKUP,
                                log_message=f"token {redact(token)}: {printable(shorten(str(not_ready)))}")
            self.guesses.failed(client)
            raise HttpError(404, "unknown token", log_message=f"token {redact(token)} not found",
                            reason=Refusal.TOKEN_UNKNOWN)
        host, port = normal
        target: Target = UnixAddress(str(port)) if host == UNIX_SOCKET else TcpAddress(host, int(port))
        connector = self._connectors.get(target)
        if connector is None:
            if len(self._connectors) >= _CACHED_CONNECTORS:
                self._connectors.clear()
            connector = AddressConnector(target, self._connect_timeout_s,
                                         self._tls if isinstance(target, TcpAddress) else None, own=self.own)
            self._connectors[target] = connector
        log.debug("token %s routes to %s", printable(redact(token)), connector.description)
        return connector

    def reload(self) -> None:
        """SIGHUP: token files are read again, a JWT key reloaded."""
        reload = getattr(self.plugin, "reload", None)
        if callable(reload):
            try:
                reload()
            except ConfigError as exc:
                log.error("token plugin not reloaded: %s", exc)
            else:
                log.info("token plugin reloaded")

    async def close(self) -> None:
        aclose = getattr(self.plugin, "aclose", None)
        close = getattr(self.plugin, "close", None)
        try:
            if callable(aclose):
                await aclose()
            elif callable(close):
                close()
        except Exception:  # shutting down: a plugin's failure to close is only worth a line
            log.warning("closing the token plugin failed", exc_info=True)
        self._workers.close()


def awaited_lookup(plugin: Any) -> Callable[[str], Awaitable[Any]] | None:
    """The coroutine the server awaits for a lookup, or None (call `lookup`).

    `async def lookup`; or `async def alookup` (TokenRedis), unless a subclass
    overrides `lookup` below the class that wrote `alookup`: then that `lookup`,
    maybe calling `super().lookup`, is the plugin's answer, and runs on a thread.
    """
    if inspect.iscoroutinefunction(plugin.lookup):
        return cast("Callable[[str], Awaitable[Any]]", plugin.lookup)
    alookup = getattr(plugin, "alookup", None)
    if alookup is None or not inspect.iscoroutinefunction(alookup) or "lookup" in getattr(plugin, "__dict__", {}):
        return None
    mro = type(plugin).__mro__
    lookup_from = next((i for i, cls in enumerate(mro) if "lookup" in vars(cls)), len(mro))
    alookup_from = next((i for i, cls in enumerate(mro) if "alookup" in vars(cls)), len(mro))
    return cast("Callable[[str], Awaitable[Any]]", alookup) if alookup_from <= lookup_from else None


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class RoutedTargets:
    """The server's default connector when a token chooses each client's target."""

    def __init__(self, plugin_name: str):
        self.description = f"targets chosen by token ({plugin_name})"

    async def connect(self, factory: Any) -> asyncio.Transport:
        raise TargetUnavailable("no target chosen for this client")
