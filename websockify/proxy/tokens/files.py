"""Token plugins backed by files: ReadOnlyTokenFile, TokenFile, TokenFileName.

A token file has one `token: host:port` per line (`token:host:port`, IPv6 as
`[::1]:5900`, and `unix_socket:/path` work too), `#` comments, blank and
indented lines. The source is such a file or a directory of them.

Both table plugins keep the tokens in a dict. ReadOnlyTokenFile reads the files
at start and on reload(); TokenFile also checks on each lookup, with one stat()
per file, whether a file changed, and re-reads only the changed ones: a token a
script just added works at once, and a lookup among 10 000 tokens costs a dict
lookup and a stat. A bad line is logged once, naming file and line, and skipped.
"""
from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field

from ...errors import ConfigError
from .base import (
    NO_SUCH_NAME,
    BasePlugin,
    DirectoryPlugin,
    TokenBackendUnavailable,
    TokenTarget,
    is_inside,
    is_plain_name,
    parse_target,
    require_source,
)

log = logging.getLogger(__name__)

# A file modified this recently may change again within the same mtime tick
# (file times are only as fine as the kernel's clock tick): such a file is read
# again on the next check, until it has been quiet for this long.
RACY_WINDOW_NS = 50_000_000

# `#` at the start of a line or after a blank starts a comment; `tok#1` is a token.
_COMMENT = re.compile(r"(?:^|\s)#")
_TOKEN_SEPARATOR = re.compile(r":\s")

Signature = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> Signature | None:
    if time.time_ns() - st.st_mtime_ns < RACY_WINDOW_NS:
        return None  # "unknown": compare the content next time
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass
class _File:
    signature: Signature | None
    data: bytes
    targets: dict[str, TokenTarget] = field(default_factory=dict)


def parse_line(line: str) -> tuple[str, TokenTarget] | None:
    """One line of a token file: None for a blank or comment line, ValueError when malformed."""
    text = _COMMENT.split(line, maxsplit=1)[0].strip()
    if not text:
        return None
    # Upstream's separator is a colon followed by a blank, so a token may contain a
    # colon there; without a blank the token ends at the first colon.
    found = _TOKEN_SEPARATOR.search(text)
    if found:
        token, target = text[:found.start()], text[found.end():]
    else:
        token, _, target = text.partition(":")
    token = token.strip()
    if not token or not target.strip():
        raise ValueError("expected 'TOKEN: HOST:PORT'")
    return token, parse_target(target)


def parse_token_file(path: str, text: str) -> dict[str, TokenTarget]:
    targets: dict[str, TokenTarget] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = parse_line(line)
        except ValueError as exc:
            log.warning("token file %s:%d: %s; line skipped", path, number, exc)
            continue
        if entry is not None:
            if entry[0] in targets:
                log.warning("token file %s:%d: token defined again in this file; this line wins", path, number)
            targets[entry[0]] = entry[1]
    return targets


class ReadOnlyTokenFile(BasePlugin):
    """Tokens from a file or a directory of files, read at start and on reload()."""

    loop_safe = True  # a dict lookup

    def __init__(self, src: str | None) -> None:
        super().__init__(require_source(src, type(self).__name__, "FILE_OR_DIRECTORY"))
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._listing: list[str] = []
        self._listing_signature: Signature | None = None
        self._targets: dict[str, TokenTarget] = {}
        self._unreadable: set[str] = set()  # warned about once
        try:
            self._refresh(force=True)
        except TokenBackendUnavailable as exc:
            raise ConfigError(f"--token-source: {exc}") from None

    def lookup(self, token: str) -> TokenTarget | None:
        return self._targets.get(token)

    def reload(self) -> None:
        """Read every file again; on failure (ConfigError) the old tokens stay."""
        with self._lock:
            try:
                self._refresh(force=True)
            except TokenBackendUnavailable as exc:
                raise ConfigError(f"--token-source: {exc}; keeping the tokens read before") from None

    @property
    def token_count(self) -> int:
        return len(self._targets)

    def _refresh(self, force: bool) -> None:
        source = str(self.source)
        try:
            st = os.stat(source)
        except OSError as exc:
            raise TokenBackendUnavailable(f"token source {source}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            paths = self._list(source, st, force)
        else:
            paths = [source]
        files: dict[str, _File] = {}
        changed = force
        for path in paths:
            entry = self._check(path, force, single=path == source, known=st if path == source else None)
            if entry is not None:
                files[path] = entry
                changed = changed or entry is not self._files.get(path)
        changed = changed or files.keys() != self._files.keys()
        self._files = files
        if changed:
            merged: dict[str, TokenTarget] = {}
            for path in paths:  # sorted: a token in two files is taken from the last
                if path in files:
                    merged.update(files[path].targets)
            self._targets = merged

    def _list(self, directory: str, st: os.stat_result, force: bool) -> list[str]:
        signature = _signature(st)
        if force or signature is None or signature != self._listing_signature:
            try:
                names = os.listdir(directory)
            except OSError as exc:
                raise TokenBackendUnavailable(f"token directory {directory}: {exc.strerror}") from None
            # Hidden files and backups (`.tokens.swp`, `tokens~`) are editors' and scripts' scratch.
            self._listing = [os.path.join(directory, name) for name in sorted(names)
                             if not name.startswith(".") and not name.endswith("~")]
            self._listing_signature = signature
        return self._listing

    def _check(self, path: str, force: bool, single: bool, known: os.stat_result | None) -> _File | None:
        """The file's tokens, re-read only when it changed; None when it is gone or not a file."""
        old = self._files.get(path)
        try:
            st = known or os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                if single:
                    raise TokenBackendUnavailable(f"token source {path} is not a file or a directory")
                return None
            signature = _signature(st)
            if not force and old is not None and signature is not None and signature == old.signature:
                return old
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            if single:
                raise TokenBackendUnavailable(f"token file {path} does not exist") from None
            return None  # removed from the directory: its tokens go with it
        except OSError as exc:
            if single:
                raise TokenBackendUnavailable(f"token file {path}: {exc.strerror}") from None
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning("token file %s cannot be read (%s); its tokens are not used", path, exc.strerror)
            return None
        self._unreadable.discard(path)
        if old is not None and data == old.data:
            old.signature = signature  # same content: no second round of syntax warnings
            return old
        return _File(signature, data, parse_token_file(path, data.decode("utf-8", errors="replace")))


class TokenFile(ReadOnlyTokenFile):
    """ReadOnlyTokenFile that notices edits: changed files are read again before a lookup.

    A lookup stats every file (about 3 us each): with more than LOOP_SAFE_FILES
    files that is too long for the event loop, and `loop_safe` turns False.
    """

    LOOP_SAFE_FILES = 16

    def lookup(self, token: str) -> TokenTarget | None:
        with self._lock:
            self._refresh(force=False)
        return self._targets.get(token)

    def _refresh(self, force: bool) -> None:
        super()._refresh(force)
        self.loop_safe = len(self._files) <= self.LOOP_SAFE_FILES


class TokenFileName(DirectoryPlugin):
    """The token is a file name in the source directory; the file holds `host:port`."""

    MAX_SIZE = 4096

    def lookup(self, token: str) -> TokenTarget | None:
        if not is_plain_name(token):
            return None
        path = os.path.realpath(os.path.join(self._directory, token))
        if not is_inside(path, self._directory):
            return None  # a symbolic link out of the directory
        try:
            # O_NONBLOCK: a FIFO named by a token must not hang the open.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                data = handle.read(self.MAX_SIZE + 1)
        except OSError as exc:
            if exc.errno in NO_SUCH_NAME:
                return None
            raise
        if len(data) > self.MAX_SIZE:
            raise ValueError(f"token file {path} is larger than {self.MAX_SIZE} bytes")
        try:
            return parse_target(data.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise ValueError(f"token file {path}: {exc}") from None
