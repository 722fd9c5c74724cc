"""Plugins that raise what is not an Exception, or hang until told, loaded by dotted name."""
import os
import time


class ExitsAuth:
    """Raises SystemExit (`--auth-source exit`) or KeyboardInterrupt for a client sending `X-Exit`."""

    def __init__(self, src=None):
        self.kind = src

    def authenticate(self, headers, target_host, target_port):
        if headers.get("X-Exit"):
            raise SystemExit(3) if self.kind == "exit" else KeyboardInterrupt()


class ExitsToken:
    """Token `exit` raises SystemExit, `interrupt` KeyboardInterrupt; any other token
    routes to the source, `host:port`."""

    def __init__(self, src=None):
        host, _, port = (src or "").rpartition(":")
        self.target = (host, port)

    def lookup(self, token):
        if token == "exit":
            raise SystemExit(1)
        if token == "interrupt":
            raise KeyboardInterrupt()
        return self.target


class AsyncExitsToken(ExitsToken):
    async def lookup(self, token):
        return ExitsToken.lookup(self, token)


class HangsUntilFile:
    """`--auth-source DIRECTORY`: each call records its start in DIRECTORY/started and
    waits until DIRECTORY/release exists (a dead backend that comes back)."""

    def __init__(self, src=None):
        self.directory = src

    def authenticate(self, headers, target_host, target_port):
        with open(os.path.join(self.directory, "started"), "a") as file:
            file.write("x")
        release = os.path.join(self.directory, "release")
        for _ in range(60 * 20):
            if os.path.exists(release):
                return
            time.sleep(0.05)
