"""The control messages between the parent and its workers: one encoding, one decoding."""
import pytest

from websockify.addresses import TcpAddress
from websockify.workers import control
from websockify.workers.control import Kind, Message
from websockify.wrap.supervisor import ProgramState


@pytest.mark.parametrize("message,data", [
    (Message(Kind.LISTENING), b"L"),
    (Message(Kind.ALIVE), b"A"),
    (Message(Kind.SESSION_STARTED), b"+"),
    (Message(Kind.SESSION_ENDED), b"-"),
    (Message(Kind.PROGRAM_STARTING), b"W"),
    (Message(Kind.PROGRAM_DOWN), b"D"),
    (Message(Kind.STOP_ACCEPTING), b"S"),
    (Message(Kind.PROGRAM_READY, TcpAddress("127.0.0.1", 5901)), b"T 127.0.0.1 5901"),
    (Message(Kind.PROGRAM_READY, TcpAddress("::1", 40000)), b"T ::1 40000"),
])
def test_each_message_has_one_encoding_and_decodes_back(message, data):
    assert control.encode(message) == data
    assert control.decode(data) == message


@pytest.mark.parametrize("data", [
    b"", b"X", b"LL", b"T", b"T ", b"T 127.0.0.1", b"T 127.0.0.1 x", b"T 127.0.0.1 0", b"T 127.0.0.1 70000",
    b"T 127.0.0.1 5901 extra", b"T \xff 1",
])
def test_anything_else_is_refused(data):
    with pytest.raises(ValueError):
        control.decode(data)


@pytest.mark.parametrize("state,address,kind", [
    (ProgramState.READY, TcpAddress("127.0.0.1", 1), Kind.PROGRAM_READY),
    (ProgramState.STARTING, None, Kind.PROGRAM_STARTING),
    (ProgramState.DOWN, None, Kind.PROGRAM_DOWN),
])
def test_the_program_state_travels_as_a_message(state, address, kind):
    message = Message.program(state, address)
    assert message.kind is kind and message.address == address
    assert control.decode(control.encode(message)).program_state is state


def test_a_ready_program_needs_its_address():
    with pytest.raises(ValueError):
        Message.program(ProgramState.READY, None)


def test_other_messages_report_no_program_state():
    assert Message(Kind.LISTENING).program_state is None
