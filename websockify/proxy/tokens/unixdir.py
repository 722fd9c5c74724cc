"""UnixDomainSocketDirectory: the token names a Unix socket in a directory.

The token is one plain name: no `/`, no `..`, no NUL, so it cannot climb out.
A symbolic link in the directory is followed only when it ends inside the
directory's tree; one that leads elsewhere is an unknown token. (Upstream
compared path prefixes, so `/run/socks2/x` passed for `/run/socks`, and at one
point did not collapse `..` at all.)

As upstream, a lookup returns `["unix_socket", path]`, and None while the
directory does not exist (with `not_ready` set: the server answers 503).
"""
from __future__ import annotations

import os
import stat

from .base import NO_SUCH_NAME, UNIX_SOCKET, DirectoryPlugin, is_inside, is_plain_name


class UnixDomainSocketDirectory(DirectoryPlugin):
    loop_safe = True  # an lstat(), plus a realpath() for symbolic links

    def lookup(self, token: str) -> list[str] | None:
        directory = self.directory()
        if directory is None or not is_plain_name(token):
            return None
        path = os.path.join(directory, token)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                path = os.path.realpath(path)
                if not is_inside(path, directory):
                    return None
                mode = os.stat(path).st_mode
        except OSError as exc:
            if exc.errno in NO_SUCH_NAME:
                self.missed()
                return None
            raise
        if not stat.S_ISSOCK(mode):
            return None
        return [UNIX_SOCKET, path]
