"""Token plugins with upstream's contract, loaded by dotted name as users load theirs.

The source is `token=host:port;token2=unix_socket:/path;...`.
"""
import asyncio
import os
import threading

RELEASE = threading.Event()


def _table(src):
    table = {}
    for item in (src or "").split(";"):
        if item:
            token, _, target = item.partition("=")
            host, _, port = target.rpartition(":")
            table[token] = ("unix_socket", port) if host == "unix_socket" else (host, port)
    return table


class Table:
    """A plain (blocking) lookup, as upstream's plugins are: runs on a worker thread."""

    def __init__(self, src=None):
        self.table = _table(src)

    def lookup(self, token):
        if token == "slow":
            RELEASE.wait(3600)
        if token == "boom":
            raise RuntimeError("plugin bug")
        if token == "odd":
            return ("host-without-port",)
        count_file = os.environ.get("LOOKUP_COUNT_FILE")
        if count_file:
            with open(count_file, "a") as file:
                file.write(token + "\n")
        return self.table.get(token)


class AsyncTable(Table):
    async def lookup(self, token):
        await asyncio.sleep(0)
        return self.table.get(token)
