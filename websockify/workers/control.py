"""The control messages between the parent and a worker, one per SOCK_SEQPACKET packet.

worker → parent: LISTENING `L`; ALIVE `A` every HEARTBEAT_INTERVAL_S, from the
worker's event loop (liveness.py); SESSION_STARTED `+` and SESSION_ENDED `-` (only
when the parent asked for them). parent → worker: the wrapped program's state,
`T HOST PORT` (ready there), `W` (starting: wait for it) or `D` (down: refuse);
STOP_ACCEPTING `S`. Pure: bytes in, messages out.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..addresses import TcpAddress
from ..wrap.supervisor import ProgramState

MAX_MESSAGE_BYTES = 256  # a target address with the longest IPv6 text fits well within
HEARTBEAT_INTERVAL_S = 1.0  # a tenth of liveness.SILENCE_LIMIT_S: one late beat is no alarm


class Kind(enum.Enum):
    LISTENING = b"L"
    ALIVE = b"A"
    SESSION_STARTED = b"+"
    SESSION_ENDED = b"-"
    PROGRAM_READY = b"T"
    PROGRAM_STARTING = b"W"
    PROGRAM_DOWN = b"D"
    STOP_ACCEPTING = b"S"


_PROGRAM_KINDS = {
    ProgramState.READY: Kind.PROGRAM_READY,
    ProgramState.STARTING: Kind.PROGRAM_STARTING,
    ProgramState.DOWN: Kind.PROGRAM_DOWN,
}
_PROGRAM_STATES = {kind: state for state, kind in _PROGRAM_KINDS.items()}


@dataclass(frozen=True)
class Message:
    kind: Kind
    address: TcpAddress | None = None  # PROGRAM_READY only

    @classmethod
    def program(cls, state: ProgramState, address: TcpAddress | None) -> "Message":
        """The wrapped program's state as a message; READY needs its address."""
        if state is ProgramState.READY:
            if address is None:
                raise ValueError("a ready program has an address")
            return cls(Kind.PROGRAM_READY, address)
        return cls(_PROGRAM_KINDS[state])

    @property
    def program_state(self) -> ProgramState | None:
        """The program's state this message reports, or None for the other kinds."""
        return _PROGRAM_STATES.get(self.kind)


def encode(message: Message) -> bytes:
    if message.kind is Kind.PROGRAM_READY:
        assert message.address is not None
        return b"T %s %d" % (message.address.host.encode("ascii"), message.address.port)
    return bytes(message.kind.value)


def decode(data: bytes) -> Message:
    """One packet; ValueError if it is not a message (a peer of another version)."""
    if data.startswith(b"T "):
        fields = data.split(b" ")
        if len(fields) != 3:
            raise ValueError(f"malformed control message {data[:80]!r}")
        host, port = fields[1].decode("ascii"), int(fields[2])
        if not 0 < port <= 65535:
            raise ValueError(f"malformed control message {data[:80]!r}")
        return Message(Kind.PROGRAM_READY, TcpAddress(host, port))
    try:
        kind = Kind(data)
    except ValueError:
        raise ValueError(f"unknown control message {data[:80]!r}") from None
    if kind is Kind.PROGRAM_READY:
        raise ValueError("a ready program's message carries its address")
    return Message(kind)
