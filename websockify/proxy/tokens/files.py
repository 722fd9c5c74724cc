"""Token plugins backed by files: ReadOnlyTokenFile, TokenFile, TokenFileName.

A token file has one `token: host:port` per line (`token:host:port`, IPv6 as
`[::1]:5900`, and `unix_socket:/path` work too), `#` comments, blank and
indented lines. The source is such a file or a directory of them.

Both table plugins keep the tokens in a dict. ReadOnlyTokenFile reads the files
at start and on reload(); TokenFile also checks on each lookup, with one stat()
per file, whether a file changed, and re-reads only the changed ones: a token a
script just added works at once, and a lookup among 10 000 tokens costs a dict
lookup and a stat. A bad line is logged once, naming file and line, and skipped.

TokenFile never parses on the event loop: `loop_safe` is a property that stats
the files and is False while one changed and was not read again, so the router
sends that lookup to a worker thread, which reads and parses while the loop
goes on. One thread re-reads at a time; the others answer from the table in
place, and wait for the new one only for a token the old table lacks. The table
is swapped in one assignment.

A file rewritten in place (truncated, then written) is read whole only once it
settled: the read saw the same size and mtime before and after, and the file
has not been modified for SETTLE_NS (1 s). Until then, the tokens of its
complete lines are added to the last table read whole, so a token in both the
old and the new file never goes missing (a removed token lingers up to 1 s, a
line still being written is not read). A file replaced by rename is whole at
once. Syntax warnings wait for the whole file.
"""
from __future__ import annotations

import asyncio
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
    upstream_target,
)

log = logging.getLogger(__name__)

# A file modified this recently may change again within the same mtime tick
# (file times are only as fine as the kernel's clock tick): such a file is read
# again on the next check, until it has been quiet for this long.
RACY_WINDOW_NS = 50_000_000
# A file changed in place this recently may be half written: its tokens are
# added to the last whole table, and it is read again, until it has been quiet
# for this long.
SETTLE_NS = 1_000_000_000

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
    whole: bool = True  # read whole; else `targets` is the last whole table plus the complete lines
    base: dict[str, TokenTarget] = field(default_factory=dict)  # the last table read whole
    inode: tuple[int, int] = (0, 0)


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


def parse_token_file(path: str, text: str, warn: bool = True) -> dict[str, TokenTarget]:
    targets: dict[str, TokenTarget] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = parse_line(line)
        except ValueError as exc:
            if warn:
                log.warning("token file %s:%d: %s; line skipped", path, number, exc)
            continue
        if entry is not None:
            if entry[0] in targets and warn:
                log.warning("token file %s:%d: token defined again in this file; this line wins", path, number)
            targets[entry[0]] = entry[1]
    return targets


class ReadOnlyTokenFile(BasePlugin):
    """Tokens from a file or a directory of files, read at start and on reload().

    A source that does not exist at start is read at the first lookup after it
    appears (upstream read it at the first lookup too); until then a lookup
    raises TokenBackendUnavailable (503). `lookup` returns `[host, "port"]`.
    """

    _settle = False  # TokenFile: a file changed in place is read whole only once it settled

    def __init__(self, src: str | None) -> None:
        super().__init__(require_source(src, type(self).__name__, "FILE_OR_DIRECTORY"))
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._listing: list[str] = []
        self._listing_signature: Signature | None = None
        self._targets: dict[str, TokenTarget] = {}
        self._unreadable: set[str] = set()  # warned about once
        self._loaded = False  # read whole once: until then, lookups read on a worker thread
        try:
            self._refresh(force=True)
        except TokenBackendUnavailable as exc:
            if os.path.exists(str(self.source)):
                raise ConfigError(f"--token-source: {exc}") from None
            # A unit may start before whatever writes its tokens: wait for the source.
            log.warning("--token-source %s does not exist yet: clients get 503 until it does", self.source)

    @property
    def loop_safe(self) -> bool:  # type: ignore[override]  # read-only: a dict lookup once the files are read
        return self._loaded

    def lookup(self, token: str) -> list[str] | None:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._refresh(force=True)  # TokenBackendUnavailable while the source is missing
        target = self._targets.get(token)
        return None if target is None else upstream_target(target)

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
        self._loaded = True

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
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as handle:
                before = os.fstat(fd)
                data = handle.read()
                after = os.fstat(fd)
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
        consistent = ((before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
                      and len(data) == after.st_size)
        inode = (after.st_dev, after.st_ino)
        whole = consistent and (not self._settle or old is None or old.inode != inode
                                or time.time_ns() - after.st_mtime_ns >= SETTLE_NS)
        signature = _signature(after) if whole else None  # not whole: read again next time
        if old is not None and data == old.data and whole == old.whole:
            old.signature = signature  # same content: no second round of syntax warnings
            return old
        if whole:
            targets = parse_token_file(path, data.decode("utf-8", errors="replace"))
            return _File(signature, data, targets, True, targets, inode)
        # Maybe half written: the last whole table, plus the tokens of the complete lines.
        complete = data[:data.rfind(b"\n") + 1]
        base = old.base if old is not None else {}
        partial = parse_token_file(path, complete.decode("utf-8", errors="replace"), warn=False)
        return _File(None, data, {**base, **partial}, False, base, old.inode if old is not None else inode)


class TokenFile(ReadOnlyTokenFile):
    """ReadOnlyTokenFile that notices edits: changed files are read again before a lookup.

    A lookup stats every file (about 3 us each): with more than LOOP_SAFE_FILES
    files that is too long for the event loop, and `loop_safe` turns False. It
    is False as well while a file changed and was not read again: the read and
    parse then happen on a worker thread, never on the event loop.
    """

    LOOP_SAFE_FILES = 16
    _settle = True

    @property
    def loop_safe(self) -> bool:  # type: ignore[override]  # read-only, as in ReadOnlyTokenFile
        return len(self._files) <= self.LOOP_SAFE_FILES and self._current()

    def lookup(self, token: str) -> list[str] | None:
        found = self._find(token)
        return None if found is None else upstream_target(found)

    def _find(self, token: str) -> TokenTarget | None:
        if _on_event_loop():
            # The router asked loop_safe a moment ago: the table is current. Never parse here;
            # a caller that did not ask gets the table in place and a re-read on a thread.
            if not self._current() and self._lock.acquire(blocking=False):
                threading.Thread(target=self._refresh_then_release, name="token-file", daemon=True).start()
            return self._targets.get(token)
        if self._lock.acquire(blocking=False):
            try:
                self._refresh(force=False)
            finally:
                self._lock.release()
            return self._targets.get(token)
        # Another thread is reading the files: the table in place answers, unless it lacks the token.
        found = self._targets.get(token)
        if found is not None:
            return found
        with self._lock:
            self._refresh(force=False)
        return self._targets.get(token)

    def _refresh_then_release(self) -> None:
        try:
            self._refresh(force=False)
        except TokenBackendUnavailable:
            pass  # the next lookup on a thread says so
        finally:
            self._lock.release()

    def _current(self) -> bool:
        """Nothing changed since the files were last read whole (a stat per file, no read)."""
        source = str(self.source)
        try:
            st = os.stat(source)
            if not stat.S_ISDIR(st.st_mode):
                entry = self._files.get(source)
                return entry is not None and entry.signature is not None and _signature(st) == entry.signature
            signature = _signature(st)
            if signature is None or signature != self._listing_signature:
                return False
            for path, entry in self._files.items():
                if entry.signature is None or _signature(os.stat(path)) != entry.signature:
                    return False
        except OSError:
            return False
        return True


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class TokenFileName(DirectoryPlugin):
    """The token is a file name in the source directory; the file holds `host:port`.

    A lookup returns `[host, "port"]` as upstream's did, and None while the
    directory does not exist (`not_ready` set: the server answers 503; upstream
    refused to start).
    """

    MAX_SIZE = 4096

    def lookup(self, token: str) -> list[str] | None:
        directory = self.directory()
        if directory is None or not is_plain_name(token):
            return None
        path = os.path.realpath(os.path.join(directory, token))
        if not is_inside(path, directory):
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
                self.missed()
                return None
            raise
        if len(data) > self.MAX_SIZE:
            raise ValueError(f"token file {path} is larger than {self.MAX_SIZE} bytes")
        try:
            return upstream_target(parse_target(data.decode("utf-8", errors="replace")))
        except ValueError as exc:
            raise ValueError(f"token file {path}: {exc}") from None
