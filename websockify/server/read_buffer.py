"""The buffer relayed client bytes are read into, one per server (one per event loop).

Frames' payloads are unmasked straight out of it: no bytes object is made (and
copied) per read. A read is used up before its handler returns, so every
connection can share one buffer; a read made while another is being handled
(asyncio's own TLS transport reads as it closes) gets a buffer of its own, so
the bytes still in use are never overwritten.

The connection reads and sets the two attributes itself, without a method call:
this is on the path of every read.
"""
from __future__ import annotations

READ_SIZE = 256 * 1024


class SharedReadBuffer:
    __slots__ = ("in_use", "view")

    def __init__(self, size: int = READ_SIZE):
        self.view = memoryview(bytearray(size))
        self.in_use = False  # a read of `view` is being handled

    def spare(self) -> memoryview:
        """A buffer of its own for a read made while `view` is in use."""
        return memoryview(bytearray(len(self.view)))
