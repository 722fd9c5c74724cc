"""Sans-I/O core: bytes in, bytes and decisions out. No sockets, no clock, no asyncio."""
