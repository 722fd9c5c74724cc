"""HTTP/1.1 request heads and plain responses, as pure functions.

The request head is parsed here (websockets' own parser accepts only GET, and a
static file server must answer HEAD and refuse other methods with 405). Header
lines are parsed by websockets' `parse_headers`, so limits and validation are
the library's. Path rules for static files live here too: they decide which
file a request may name without touching the file system.
"""
from __future__ import annotations

import email.utils
import http
import mimetypes
import re
from dataclasses import dataclass
from typing import Generator, Iterable, Optional
from urllib.parse import unquote_to_bytes

from websockets.datastructures import Headers
from websockets.http11 import MAX_LINE_LENGTH, parse_headers
from websockets.streams import StreamReader

from ..errors import HttpError

_METHOD = re.compile(rb"[A-Z]{1,16}")
_VERSION = re.compile(rb"HTTP/1\.[01]")
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
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


class RequestReader:
    """Accumulates bytes until a whole request head has arrived."""

    def __init__(self) -> None:
        self._reader = StreamReader()
        self._parser = self._parse()
        next(self._parser)

    def feed(self, data: bytes) -> Optional[RequestHead]:
        """Return the head once complete, None while more is needed; raise HttpError on bad input."""
        self._reader.feed_data(data)
        try:
            self._parser.send(None)
        except StopIteration as done:
            return done.value
        return None

    @property
    def leftover(self) -> bytes:
        """Bytes received after the head (a client may pipeline its first frame)."""
        return bytes(self._reader.buffer)

    def _parse(self) -> Generator[None, None, RequestHead]:
        yield  # primed by __init__
        try:
            line = yield from self._reader.read_line(MAX_LINE_LENGTH)
        except RuntimeError:
            raise HttpError(414, "request line too long") from None
        parts = line.rstrip(b"\r\n").split(b" ")
        if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not parts[1]:
            raise HttpError(400, "malformed request line")
        if not _VERSION.fullmatch(parts[2]):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        try:
            headers = yield from parse_headers(self._reader.read_line)
        except Exception as exc:  # websockets signals every header defect by an exception
            raise HttpError(400, f"bad request headers: {exc}") from None
        return RequestHead(
            method=parts[0].decode("ascii"),
            target=parts[1].decode("latin-1"),
            version=parts[2].decode("ascii"),
            headers=headers,
        )


def auth_headers(headers: Headers, client_cn: Optional[str]) -> Headers:
    """The headers an auth plugin sees: no client-sent `SSL_*` header in any letter
    case, and `SSL_CLIENT_S_DN_CN` only from a verified TLS client certificate."""
    clean = Headers((k, v) for k, v in headers.raw_items() if not k.lower().startswith("ssl_"))
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
