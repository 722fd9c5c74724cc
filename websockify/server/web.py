"""Static files for `--web DIR`: GET and HEAD, one response per connection.

Which path a request may name is decided in protocol/http.py; this module adds
the file-system checks (symlinks must resolve inside the root) and streams the
file in chunks, with flow control.
"""
from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import os
import stat

from ..errors import HttpError
from ..protocol.http import (
    SECURITY_HEADERS,
    RequestHead,
    content_type,
    error_response,
    http_date,
    response_head,
    static_path,
)
from ..protocol.token_request import printable_target

log = logging.getLogger(__name__)


def resolve(web_root: str, target: str) -> str:
    """The file to serve for a request target, or HttpError (404, or 301 to add a slash)."""
    requested = static_path(target)
    root = os.path.realpath(web_root)
    candidate = os.path.realpath(os.path.join(root, *requested.segments))
    if not _inside(root, candidate):
        raise HttpError(404, "not found")
    if os.path.isdir(candidate):
        if not requested.directory_form:
            # One leading slash: `//host/dir/` would send the browser to another site.
            raise HttpError(301, "moved", (("Location", "/" + requested.url_path.lstrip("/") + "/"),))
        candidate = os.path.realpath(os.path.join(candidate, "index.html"))
        if not _inside(root, candidate):
            raise HttpError(404, "not found")
    if not os.path.isfile(candidate):
        raise HttpError(404, "not found")
    return candidate


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _etag(st: os.stat_result) -> str:
    digest = hashlib.blake2s(f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=8)
    return f'"{digest.hexdigest()}"'


_CHUNK_BYTES = 64 * 1024


async def serve(transport: asyncio.Transport, head: RequestHead, web_root: str, peer: str,
                writable: asyncio.Event) -> None:
    """Answer one GET/HEAD. `writable` is cleared while the client's buffer is full."""
    include_body = head.method != "HEAD"
    status = 200
    try:
        try:
            path = resolve(web_root, head.target)
            file = open(path, "rb")
        except OSError:
            raise HttpError(404, "not found") from None
    except HttpError as exc:
        status = exc.status
        transport.write(error_response(exc.status, str(exc), exc.headers, include_body))
        transport.close()
        log.info("%s: %s %s -> %d", peer, head.method, printable_target(head.target), status)
        return
    with file:
        st = os.fstat(file.fileno())
        etag = _etag(st)
        not_modified = _not_modified(head, etag, st.st_mtime)
        status = 304 if not_modified else 200
        headers = [
            ("Content-Type", content_type(path)),
            ("Last-Modified", http_date(st.st_mtime)),
            ("ETag", etag),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
            *SECURITY_HEADERS,
        ]
        if not not_modified:
            headers.insert(1, ("Content-Length", str(st.st_size)))
        transport.write(response_head(status, headers))
        if include_body and not not_modified and stat.S_ISREG(st.st_mode):
            # Chunks with flow control, so a large file costs one chunk of memory
            # (loop.sendfile is not available on every event loop).
            while chunk := file.read(_CHUNK_BYTES):
                await writable.wait()
                if transport.is_closing():
                    break
                transport.write(chunk)
    transport.close()
    log.info("%s: %s %s -> %d", peer, head.method, printable_target(head.target), status)


def _not_modified(head: RequestHead, etag: str, mtime: float) -> bool:
    """RFC 9110 §13.1.2/13.1.3: If-None-Match wins over If-Modified-Since."""
    if_none_match: str | None = head.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or etag in tags or f"W/{etag}" in tags
    since = head.headers.get("If-Modified-Since")
    if since is None:
        return False

    try:
        since_ts = email.utils.parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False
    return int(mtime) <= int(since_ts)
