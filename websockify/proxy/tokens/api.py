"""Token plugins that ask an HTTP service: BaseTokenAPI and JSONTokenApi.

The source is a URL with `%s` where the token goes, e.g.
`http://auth.local/vnc/%s`. The token is percent-encoded first, so it is one
path segment whatever it contains (upstream pasted it in raw: `/`, `?`, `#`
and `&` reached other paths and parameters of the API). A request has a
timeout; 404 (or any 4xx) means "no such token", while an unreachable, slow or
failing (5xx) service raises TokenBackendUnavailable.

The stdlib client blocks: `lookup` is plain, and runs on a worker thread.
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ...errors import ConfigError
from .base import BasePlugin, TokenBackendUnavailable, TokenTarget, normalize_target, parse_target, require_source

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

    timeout = 5.0  # seconds for connecting and for each read

    def __init__(self, src: str | None) -> None:
        url = require_source(src, type(self).__name__, "URL (with %s where the token goes)")
        if "%s" not in url:
            raise ConfigError(f"--token-source: {url!r} has no %s where the token goes")
        parts = urllib.parse.urlsplit(url.replace("%s", "TOKEN"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--token-source: {url!r} is not an http:// or https:// URL")
        super().__init__(url)
        # Environment proxies apply, as they did with upstream's requests.
        self._opener = urllib.request.build_opener()

    def url_for(self, token: str) -> str:
        return str(self.source).replace("%s", urllib.parse.quote(token, safe=""), 1)

    def lookup(self, token: str) -> TokenTarget | None:
        response = self._get(self.url_for(token))
        if response.status_code >= 500:
            raise TokenBackendUnavailable(f"token API answered {response.status_code}")
        if not response.ok:
            return None
        return normalize_target(self.process_result(response))

    def process_result(self, resp: ApiResponse) -> Any:
        return parse_target(resp.text)

    def _get(self, url: str) -> ApiResponse:
        request = urllib.request.Request(url, headers={"Accept": "application/json, text/plain"})
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return ApiResponse(reply.status, self._read(reply), reply.headers)
        except urllib.error.HTTPError as exc:
            with exc:
                return ApiResponse(exc.code, self._read(exc), exc.headers)
        except urllib.error.URLError as exc:
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
