"""Client bytes as the relay hands them to a session: a view of a read buffer that the
next read overwrites (server/connection.py shares one across connections)."""


def receive(session, chunk: bytes) -> list:
    buffer = bytearray(chunk)
    with memoryview(buffer) as view:
        out = session.receive_data(view)
    buffer[:] = b"\xee" * len(buffer)  # the next read: anything the session kept a view of changes
    assert all(type(payload) is bytes for payload in out), "a payload refers to the read buffer"
    return out
