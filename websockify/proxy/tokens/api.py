"""Token plugins that ask an HTTP service: BaseTokenAPI and JSONTokenApi.

The source is a URL with `%s` where the token goes, e.g.
`http://auth.local/vnc/%s`. The token is percent-encoded first, so it is one
path segment whatever it contains (upstream pasted it in raw: `/`, `?`, `#`
and `&` reached other paths and parameters of the API). A lookup has one
deadline (`timeout`, 5 s) for the whole exchange — connecting, TLS, sending,
every read of the reply, redirects included — so an API that dribbles a byte
at a time cannot hold a thread past it. Redirects are followed only within the
source URL's origin (scheme, host and port). 404 (or any 4xx) means "no such
token", while an unreachable, slow or failing (5xx) service, or a refused
redirect, raises TokenBackendUnavailable.

The stdlib client blocks: `lookup` is plain, and runs on a worker thread. It
returns what upstream's did: `[host, b"port"]` (BaseTokenAPI) or the JSON's
`(host, port)` (JSONTokenApi); the server checks the answer.
"""
from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ...errors import ConfigError
from .base import BasePlugin, TokenBackendUnavailable, parse_target, require_source

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class ApiResponse:
    """The parts of a `requests` response that upstream's `process_result` overrides use."""

    def __init__(self, status_code: int, content: bytes, headers: Any = None):
        self.status_code = status_code
        self.content = content
        self.headers = headers if headers is not None else {}

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class BaseTokenAPI(BasePlugin):
    """GET the URL; the body is `host:port`."""

    timeout = 5.0  # seconds for the whole exchange: connecting, sending, reading, redirects

    def __init__(self, src: str | None) -> None:
        url = require_source(src, type(self).__name__, "URL (with %s where the token goes)")
        if "%s" not in url:
            raise ConfigError(f"--token-source: {url!r} has no %s where the token goes")
        parts = urllib.parse.urlsplit(url.replace("%s", "TOKEN"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--token-source: {url!r} is not an http:// or https:// URL")
        super().__init__(url)

    def url_for(self, token: str) -> str:
        return str(self.source).replace("%s", urllib.parse.quote(token, safe=""), 1)

    def lookup(self, token: str) -> Any:
        """What `process_result` makes of a 2xx reply (the server checks it), None for a 4xx."""
        response = self._get(self.url_for(token))
        if response.status_code >= 500:
            raise TokenBackendUnavailable(f"token API answered {response.status_code}")
        if not response.ok:
            return None
        return self.process_result(response)

    def process_result(self, resp: ApiResponse) -> Any:
        """`[host, b"port"]`: upstream's shape, port in bytes, for overrides that call it."""
        host, port = parse_target(resp.text)
        return [host, str(port).encode("ascii")]

    def _get(self, url: str) -> ApiResponse:
        request = urllib.request.Request(url, headers={"Accept": "application/json, text/plain"})
        deadline = Deadline(self.timeout)
        # One opener per lookup, its connections bound to this lookup's deadline.
        # Environment proxies apply, as they did with upstream's requests.
        opener = urllib.request.build_opener(_BoundedHTTPHandler(deadline), _BoundedHTTPSHandler(deadline),
                                             _SameOriginRedirects())
        try:
            with opener.open(request, timeout=deadline.left()) as reply:
                return ApiResponse(reply.status, self._read(reply), reply.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                return ApiResponse(exc.code, self._read(exc), exc.headers)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise TokenBackendUnavailable(f"token API did not answer within {self.timeout:g}s") from None
            raise TokenBackendUnavailable(f"token API unreachable: {exc.reason}") from None
        except (TimeoutError, socket.timeout):
            raise TokenBackendUnavailable(f"token API did not answer within {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:  # reset mid-reply, not HTTP at all...
            raise TokenBackendUnavailable(f"token API: {exc!r}") from None

    def _read(self, reply: Any) -> bytes:
        body: bytes = reply.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ValueError(f"token API reply is longer than {MAX_BODY} bytes")
        return body


class Deadline:
    """One point in time for a whole lookup; `left()` raises TimeoutError once it has passed."""

    def __init__(self, seconds: float):
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the token API lookup's deadline has passed")
        return left


class _DeadlineReader(io.RawIOBase):
    """The socket's reads, each with the socket timeout set to what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline):
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds the socket open as http.client expects
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.left())
        count: int | None = self._raw.readinto(buffer)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client.HTTPResponse needs of a socket: `makefile("rb")`, here bounded."""

    def __init__(self, sock: socket.socket, deadline: Deadline):
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _bounded(base: type[http.client.HTTPConnection], deadline: Deadline) -> type[http.client.HTTPConnection]:
    """`base` whose connect, TLS handshake, sends and reads all end by `deadline`."""

    def create_connection(address: tuple[str, int], timeout: Any = None,
                          source_address: tuple[str, int] | None = None) -> socket.socket:
        sock = socket.create_connection(address, deadline.left(), source_address)
        try:
            sock.settimeout(deadline.left())  # the TLS handshake is bounded by what is left
        except BaseException:
            sock.close()
            raise
        return sock

    class Response(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any):
            super().__init__(_DeadlineSocket(sock, deadline), *args, **kwargs)  # type: ignore[arg-type]

    class Bounded(base):  # type: ignore[valid-type,misc]
        response_class = Response

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._create_connection = create_connection

        def send(self, data: Any) -> None:
            if self.sock is None and self.auto_open:
                self.connect()
            if self.sock is not None:
                self.sock.settimeout(deadline.left())
            super().send(data)

    return Bounded


class _BoundedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self._connection = _bounded(http.client.HTTPConnection, deadline)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _BoundedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self._connection = _bounded(http.client.HTTPSConnection, deadline)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)  # the default context, as HTTPSHandler()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only within the origin (scheme, host, port) of the request
    it answers, so a redirected answer never comes from another host or scheme."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = _origin(newurl)
        if new[0] not in ("http", "https") or new != _origin(req.full_url):
            fp.close()
            raise TokenBackendUnavailable(f"token API unreachable: refused redirect ({code}) "
                                          f"to another origin ({new[0]}://{new[1]})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class JSONTokenApi(BaseTokenAPI):
    """GET the URL; the body is `{"host": ..., "port": ...}`."""

    def process_result(self, resp: ApiResponse) -> Any:
        try:
            reply = resp.json()
        except ValueError:
            raise ValueError("token API reply is not JSON") from None
        if not isinstance(reply, dict) or "host" not in reply or "port" not in reply:
            raise ValueError("token API reply has no 'host' and 'port'")
        return reply["host"], reply["port"]
