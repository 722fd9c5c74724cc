"""HTTP/1.1 request heads and plain responses, as pure functions.

The request head is parsed by llhttp (through httptools), the C parser of
Node.js, in its strict mode: the same parser for the WebSocket upgrade, static
files and errors, so a static file server can answer HEAD and refuse other
methods with 405. We add the limits a public server needs: the size of the
whole head, the number of header lines, and no second copy of a header that
must appear once. Path rules for static files live here too: they decide which
file a request may name without touching the file system.
"""
from __future__ import annotations

import email.utils
import http
import http.client
import mimetypes
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import unquote_to_bytes

import httptools
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader

from ..access_lists import ANY as ANY_HOST
from ..access_lists import normal_host
from ..config import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS
from ..errors import HttpError

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
# Headers that mean one thing: a second copy is either an attack (a plugin and
# a proxy in front of us could read different values) or a broken client.
SINGLE_HEADERS = frozenset(name.lower() for name in (
    "Host", "Origin", "Authorization", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
    "Sec-WebSocket-Key1", "Sec-WebSocket-Key2", "If-None-Match", "If-Modified-Since",
    "Content-Length", "Transfer-Encoding", "Cookie",
))
# Types of the files noVNC ships; mimetypes' table varies between systems.
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers

    @property
    def wants_websocket(self) -> bool:
        return "websocket" in self.headers.get("Upgrade", "").lower()


class _HeadersDone(Exception):
    """Raised from llhttp's callback to stop at the end of a head that is not an upgrade."""


class RequestReader:
    """Accumulates bytes until a whole request head has arrived.

    Memory is bounded by `max_header_bytes` plus one read: bytes of an
    unfinished head count as they arrive, whatever llhttp makes of them.
    """

    def __init__(self, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 max_headers: int = DEFAULT_MAX_HEADERS) -> None:
        self._max_bytes = max_header_bytes
        self._max_headers = max_headers
        self._parser = httptools.HttpRequestParser(self)
        self._seen = 0
        self._url = bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._complete = False
        self._error: HttpError | None = None  # raised inside a callback
        self.leftover = b""  # bytes after the head (a client may pipeline its first frame)

    def feed(self, data: bytes) -> RequestHead | None:
        """Return the head once complete, None while more is needed; raise HttpError on bad input."""
        if self._complete:
            raise RuntimeError("the request head is already complete")
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.leftover = bytes(data[upgrade.args[0]:])
        except httptools.HttpParserError as exc:
            if self._error is not None:
                raise self._error from None
            if str(exc) == "Invalid HTTP version":  # well-formed (HTTP/9.9), just not one llhttp knows
                raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported") from None
            if not self._complete:  # else: our own stop at the end of the head
                raise HttpError(400, f"malformed request: {exc}") from None
        if self._complete:
            return self._head()
        self._seen += len(data)
        if self._seen > self._max_bytes:
            raise self._too_large()
        return None

    def _too_large(self) -> HttpError:
        if len(self._url) > self._max_bytes // 2:
            return HttpError(414, "request line too long")
        return HttpError(431, f"request head longer than {self._max_bytes} bytes")

    def _head(self) -> RequestHead:
        # The last chunk may have held the whole head: count what llhttp kept of it
        # and the syntax every head has ("M U HTTP/x.y", "n:v" lines, CRLFs), never
        # more than the head's bytes, so a head within the limit always passes.
        size = (len(self._parser.get_method()) + len(self._url) + 12
                + sum(len(n) + len(v) + 3 for n, v in self._headers) + 2)
        if size > self._max_bytes:
            raise self._too_large()
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        headers = Headers()
        seen: set[str] = set()
        for raw_name, raw_value in self._headers:
            name = raw_name.decode("ascii", "surrogateescape")
            lower = name.lower()
            if lower in SINGLE_HEADERS:
                if lower in seen:
                    raise HttpError(400, f"duplicate {name} header")
                seen.add(lower)
            try:
                # Latin-1, as websockets' own parser reads values: its Headers refuse
                # the surrogates of any other lossless decoding.
                headers[name] = raw_value.decode("latin-1")
            except InvalidHeader:
                raise HttpError(400, f"invalid {name} header") from None
        return RequestHead(
            method=self._parser.get_method().decode("ascii"),
            target=self._url.decode("latin-1"),
            version=f"HTTP/{version}",
            headers=headers,
        )

    # -- llhttp's callbacks ------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= self._max_headers:
            self._error = HttpError(431, f"more than {self._max_headers} header lines")
            raise self._error
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._complete = True
        if not self._parser.should_upgrade():
            raise _HeadersDone()  # stop: a body or a pipelined request is not ours to read


class AuthHeaders(http.client.HTTPMessage):
    """What an auth plugin gets, as upstream's plugins got it: an HTTPMessage, so
    `headers["Missing"]` and `headers.get("Missing")` are None, names keep the
    client's case, lookups ignore case. One difference: `headers[name]` for a
    header the client sent twice raises KeyError instead of picking the first
    copy, so a plugin never decides on one of two disagreeing values unawares."""

    def __getitem__(self, name: str) -> str | None:
        values = self.get_all(name)
        if values is None:
            return None
        if len(values) > 1:
            raise KeyError(f"header {name!r} was sent {len(values)} times")
        return str(values[0])


def auth_headers(headers: Headers, client_cn: str | None) -> AuthHeaders:
    """The headers an auth plugin sees: no client-sent `SSL_*` header in any letter
    case, and `SSL_CLIENT_S_DN_CN` only from a verified TLS client certificate."""
    clean = AuthHeaders()
    for name, value in headers.raw_items():
        if not name.lower().startswith("ssl_"):
            clean[name] = value  # appends: a repeated header stays repeated
    if client_cn is not None:
        clean["SSL_CLIENT_S_DN_CN"] = client_cn
    return clean


@dataclass(frozen=True)
class StaticPath:
    segments: tuple[str, ...]
    directory_form: bool  # the URL path ends with "/"
    url_path: str  # the path as requested, without query


def static_path(target: str) -> StaticPath:
    """Map a request target to path segments below the web root.

    Dot segments, dotfiles, encoded slashes and NUL bytes are refused, so the
    result can only name something inside the root (symlinks are the caller's
    check: they need the file system).
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        raise HttpError(400, "request target must be an absolute path")
    segments = []
    for raw in path.split("/"):
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "path is not valid UTF-8") from None
        if segment in ("", "."):
            continue
        if segment.startswith(".") or any(c in segment for c in "/\\\x00"):
            raise HttpError(404, "not found")
        segments.append(segment)
    return StaticPath(tuple(segments), path.endswith("/"), path)


def content_type(name: str) -> str:
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot >= 0 else ""
    if ext in _CONTENT_TYPES:
        return _CONTENT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def response_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    reason = http.HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_response(status: int, message: str, headers: Iterable[tuple[str, str]] = (),
                   include_body: bool = True) -> bytes:
    """A short plain-text error page; the connection closes after it."""
    body = f"{status} {http.HTTPStatus(status).phrase}: {message}\n".encode("utf-8")
    all_headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        *SECURITY_HEADERS,
        *headers,
    ]
    return response_head(status, all_headers) + (body if include_body else b"")


_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _authority(scheme: str, authority: str) -> str:
    """`host[:port]` lower-cased, without the scheme's default port."""
    authority = authority.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default is not None and authority.endswith(":" + default):
        authority = authority[: -len(default) - 1]
    return authority


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...] | None,
                   same_origin: bool) -> bool:
    """May a browser page from `origin` open a WebSocket here (cross-site WebSocket hijacking)?

    No Origin header: not a browser, allowed. `allowed` lists exact origins or
    "*". With no list, `same_origin` requires the Origin's host and port to be
    the request's Host (the scheme is not compared: a TLS-terminating proxy in
    front of us changes it); without it, any origin is allowed.
    """
    if origin is None:
        return True
    if allowed is not None:
        return "*" in allowed or origin.lower() in allowed
    if not same_origin:
        return True
    scheme, sep, authority = origin.partition("://")
    if not sep or host is None:
        return False
    scheme = scheme.lower()
    host_scheme = "https" if scheme in ("https", "wss") else "http"
    return _authority(scheme, authority) == _authority(host_scheme, host)


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """Does the `Host` header name this gateway (`--allowed-hosts`, parsed by
    access_lists.parse_hosts)? Its port is ignored; `.example.com` in the list
    matches example.com and every name under it. No Host header: only with `*`."""
    if ANY_HOST in allowed:
        return True
    if not host:
        return False
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    normal = normal_host(name)
    if normal is None:
        return False
    return any(normal == entry or (entry.startswith(".") and (normal == entry[1:] or normal.endswith(entry)))
               for entry in allowed)
