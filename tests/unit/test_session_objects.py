"""The objects made for every session carry no per-instance dict: thousands are open at
once, and a dict costs hundreds of bytes each (over 1 KB once a class passes the 30
attributes whose keys CPython shares between instances)."""
import pytest

from websockify.protocol.websocket import WebSocketSession
from websockify.proxy.heartbeat import Heartbeat
from websockify.proxy.pump import Relay, TargetProtocol
from websockify.server.connection import ClientConnection
from websockify.server.gate import Entry


@pytest.mark.parametrize("cls", [ClientConnection, Entry, Relay, TargetProtocol, WebSocketSession, Heartbeat])
def test_a_per_session_class_has_slots_all_the_way_down(cls):
    assert cls.__dictoffset__ == 0, f"{cls.__name__} instances have a __dict__: give it (or a base) __slots__"

