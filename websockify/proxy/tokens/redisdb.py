"""TokenRedis: targets stored in Redis under the token (or `namespace:token`).

The source is upstream's `host[:port[:db[:password[:namespace]]]]` (a field in
double quotes may contain `:`, e.g. `redis::::"app:vnc"`; an IPv6 host goes in
brackets), or a `redis://`, `rediss://` (TLS) or `unix://` URL, where the
namespace is the `namespace` query parameter. A value is `host:port` or
upstream's JSON `{"host": "host:port"}` (`{"host": ..., "port": ...}` works too).

One connection pool serves every lookup (upstream opened a connection per
lookup), through redis-py's asyncio client: the server awaits `alookup`.
`lookup` is upstream's synchronous GET (its own client and pool, made at the
first call), for subclasses calling `super().lookup(token)`. A Redis
that is down or silent raises TokenBackendUnavailable within `timeout`, and the
pool reconnects by itself once Redis is back.

A lookup reads at most MAX_VALUE bytes (4 KiB; a target is `host:port` or a
small JSON object): EXISTS and GETRANGE 0..MAX_VALUE go in one pipelined round
trip, so a huge value is never transferred; a value longer than MAX_VALUE is a
failed lookup (ValueError, a short log line), as is one that does not parse.
Error texts quoted from Redis or from a value are cut to a few dozen characters.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import urllib.parse
from typing import Any

from ...addresses import parse_host, parse_port
from ...errors import ConfigError
from ...protocol.logsafe import printable
from .base import (
    BasePlugin,
    TokenBackendUnavailable,
    TokenTarget,
    missing_library,
    normalize_target,
    parse_target,
    require_source,
    shorten,
    token_hint,
)

log = logging.getLogger(__name__)

SOURCE_FORMAT = "HOST[:PORT[:DB[:PASSWORD[:NAMESPACE]]]] or a redis://, rediss:// or unix:// URL"
URL_SCHEMES = ("redis", "rediss", "unix")
MAX_VALUE = 4096  # bytes a lookup reads of a value; a longer value is refused


# Upstream's: a field is `"..."` (no `"` inside) between colons or the ends, or
# anything without a colon. Kept as is, so a source splits as it did there.
_SOURCE_SPLIT = re.compile(
    r'(?<=^)"([^"]+)"(?=:|$)'
    r'|(?<=:)"([^"]+)"(?=:|$)'
    r'|(?<=^)([^:]*)(?=:|$)'
    r'|(?<=:)([^:]*)(?=:|$)',
)


def parse_source_args(src: str) -> list[str]:
    """Split `src` on `:` like upstream: a field wrapped in double quotes keeps its colons.

    `a:b:c` -> ['a', 'b', 'c'];  `a:"b:c":d` -> ['a', 'b:c', 'd']
    """
    return [m[0] or m[1] or m[2] or m[3] for m in _SOURCE_SPLIT.findall(src)]


def parse_redis_source(src: str) -> tuple[dict[str, Any], str | None, str]:
    """(connection keyword arguments, URL or None, namespace) for `src`; ConfigError if malformed."""
    if urllib.parse.urlsplit(src).scheme in URL_SCHEMES and "://" in src:
        parts = urllib.parse.urlsplit(src)
        if parts.scheme == "unix" and not parts.path:
            raise ConfigError(f"--token-source: {src!r} names no socket; write unix:///path/to/redis.sock")
        url, namespace = _take_namespace(src)
        return {}, url, namespace
    what = "--token-source"
    host_field = None
    if src.startswith("["):
        close = src.find("]")
        if close == -1 or src[close + 1:close + 2] not in ("", ":"):
            raise ConfigError(f"{what}: {src!r} is not {SOURCE_FORMAT}")
        host_field, src = src[:close + 1], src[close + 2:]
    fields = parse_source_args(src) if src or host_field is None else []
    if host_field is not None:
        fields.insert(0, host_field)
    if len(fields) > 5:
        raise ConfigError(f"{what}: {len(fields)} fields in the Redis address; expected {SOURCE_FORMAT} "
                          "(put a field that contains ':' in double quotes)")
    host, port, db, password, namespace = fields + [""] * (5 - len(fields))
    if not host:
        raise ConfigError(f"{what}: the Redis address has no host; expected {SOURCE_FORMAT}")
    if not db.isdigit() and db:
        raise ConfigError(f"{what}: Redis database {db!r} is not a number")
    settings = {"host": parse_host(host, f"{what} Redis host"),
                "port": parse_port(port, f"{what} Redis") if port else 6379,
                "db": int(db) if db else 0,
                "password": password or None}
    return settings, None, namespace


def _take_namespace(url: str) -> tuple[str, str]:
    """`url` without its `namespace` query parameter (ours, not redis-py's), and that namespace.

    Only that parameter is cut out of the text; the rest stays as the user wrote it,
    since redis-py reads some forms (`unix:///path`) by their exact spelling.
    """
    head, question, tail = url.partition("?")
    if not question:
        return url, ""
    query, hash_mark, fragment = tail.partition("#")
    kept, namespace = [], ""
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if urllib.parse.unquote_plus(name) == "namespace":
            namespace = urllib.parse.unquote_plus(value)
        else:
            kept.append(field)
    rest = "&".join(kept)
    return head + ("?" + rest if rest else "") + hash_mark + fragment, namespace


class TokenRedis(BasePlugin):
    """Targets in Redis. The server awaits `alookup` (one pooled asyncio client, a
    bounded read); `lookup` is upstream's synchronous call, for subclasses that call
    `super().lookup(token)` and for direct callers: it returns `[host, "port"]`."""

    connect_timeout = 2.0  # seconds to open a connection
    timeout = 3.0  # seconds for a whole lookup, reconnecting included

    def __init__(self, src: str | None) -> None:
        super().__init__(require_source(src, "TokenRedis", SOURCE_FORMAT))
        try:
            import redis
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import TimeoutError as RedisTimeoutError
            from redis.retry import Retry as SyncRetry
        except ImportError:
            raise missing_library("TokenRedis", "redis", "redis") from None
        self._unavailable_errors = (RedisConnectionError, RedisTimeoutError, OSError)
        settings, url, namespace = parse_redis_source(str(self.source))
        # Upstream's attributes, as its subclasses read them (None for a URL source).
        self._server: str | None = settings.get("host")
        self._port: int | None = settings.get("port")
        self._db: int | None = settings.get("db")
        self._password: str | None = settings.get("password")
        self._namespace = f"{namespace}:" if namespace else ""
        options: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.timeout,
        }
        # redis.Redis is looked up at the first synchronous lookup, as upstream looked it up per lookup.
        self._sync_redis, self._sync_retry = redis, SyncRetry(NoBackoff(), 1)
        self._sync_options, self._url, self._settings = options, url, settings
        self._sync_client: Any = None
        self._sync_lock = threading.Lock()
        try:
            # One quick second try covers a pooled connection that died with a Redis restart.
            if url is not None:
                self._client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), **options)
                self._where = urllib.parse.urlsplit(url)._replace(netloc=_without_password(url), query="").geturl()
            else:
                self._client = aioredis.Redis(**settings, retry=Retry(NoBackoff(), 1), **options)
                self._where = f"{settings['host']}:{settings['port']} db {settings['db']}"
            # Builds a connection without connecting: an unknown URL option fails now, not per lookup.
            pool: Any = self._client.connection_pool
            pool.make_connection()
        except ValueError as exc:
            raise ConfigError(f"--token-source: {exc}") from None
        except TypeError as exc:  # "...__init__() got an unexpected keyword argument 'x'"
            raise ConfigError(f"--token-source: an option of the Redis URL is not known to redis-py: {exc}") from None

    def lookup(self, token: str) -> list[str] | None:
        """Upstream's lookup: GET the key; `[host, "port"]` as stored, or None for a
        missing key or a value that is no target (logged). Blocks: a thread's call."""
        try:
            value = self._sync().get(self._namespace + token)
        except self._unavailable_errors as exc:
            raise TokenBackendUnavailable(f"Redis at {self._where}: {shorten(exc)}") from None
        if value is None:
            return None
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
        found = upstream_value(text) if len(text) <= MAX_VALUE else None
        if found is None:
            log.error("Redis value for token %s is not a target: %s", token_hint(token), printable(shorten(text)))
        return found

    def _sync(self) -> Any:
        with self._sync_lock:
            if self._sync_client is None:
                options = {**self._sync_options, "retry": self._sync_retry}
                if self._url is not None:
                    self._sync_client = self._sync_redis.Redis.from_url(self._url, **options)
                else:
                    self._sync_client = self._sync_redis.Redis(**self._settings, **options)
            return self._sync_client

    async def alookup(self, token: str) -> TokenTarget | None:
        key = self._namespace + token
        try:
            async with asyncio.timeout(self.timeout):
                # One round trip; GETRANGE reads one byte past the bound, so "too long" shows.
                pipeline: Any = self._client.pipeline(transaction=False)
                pipeline.exists(key)
                pipeline.getrange(key, 0, MAX_VALUE)
                exists, value = await pipeline.execute()
        except TimeoutError:  # before OSError, its base class
            raise TokenBackendUnavailable(f"Redis at {self._where}: no answer within {self.timeout:g}s") from None
        except self._unavailable_errors as exc:
            raise TokenBackendUnavailable(f"Redis at {self._where}: {shorten(exc)}") from None
        except Exception as exc:  # a ResponseError (WRONGTYPE...): its text may quote anything
            raise ValueError(f"Redis lookup for token {token_hint(token)}: {shorten(exc)}") from None
        if not exists:
            return None
        if len(value) > MAX_VALUE:
            raise ValueError(f"Redis value for token {token_hint(token)} is longer than {MAX_VALUE} bytes; "
                             "refused")
        try:
            return parse_value(value.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise ValueError(f"Redis value for token {token_hint(token)}: {shorten(exc, 256)}") from None

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._sync_client is not None:
            self._sync_client.close()


def upstream_value(text: str) -> list[str] | None:
    """A value read as upstream read it: JSON `{"host": "h:p"}` (or with a "port"),
    or `h:p`; `[host, "port"]` unchecked, or None when it is neither."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("host"), str):
            return None
        if "port" in data:
            return [data["host"], str(data["port"])]
        text = data["host"]
    elif not re.match(r"\S+:\S+", text):
        return None
    host, sep, port = text.rpartition(":")
    return [host, port] if sep and host and port else None


def parse_value(text: str) -> TokenTarget:
    text = text.strip()
    if not text.startswith("{"):
        return parse_target(text)
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("host"), str):
        raise ValueError('JSON without a "host" string')
    if "port" in data:
        target = normalize_target((data["host"], data["port"]))
        assert target is not None
        return target
    return parse_target(data["host"])


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host
