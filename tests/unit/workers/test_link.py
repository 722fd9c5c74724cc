"""A worker's side: the settings it is started with, and the program as the parent reports it."""
import asyncio

import pytest

from websockify.addresses import TcpAddress
from websockify.config import Config
from websockify.errors import TargetUnavailable
from websockify.workers.control import Kind, Message
from websockify.workers.link import VARIABLES, RemoteTarget, WorkerSettings
from websockify.wrap.supervisor import ProgramState


def test_settings_travel_in_the_environment_and_reading_them_changes_nothing():
    settings = WorkerSettings(2, 1234, 7, True, [3, 4], Config(listen=None, target=TcpAddress("h", 1)))
    environ = settings.to_environment()
    assert sorted(environ) == sorted(VARIABLES)
    copy = dict(environ)
    assert WorkerSettings.from_environment(environ) == settings
    assert environ == copy


def test_no_settings_without_the_parent():
    assert WorkerSettings.from_environment({}) is None


def test_settings_with_no_listening_sockets():
    settings = WorkerSettings(0, 1, 5, False, [], Config(listen=None, target=TcpAddress("h", 1)))
    assert WorkerSettings.from_environment(settings.to_environment()) == settings


def test_remote_target_follows_the_parents_messages():
    target = RemoteTarget(connect_timeout_s=1.0)
    assert target.state is ProgramState.STARTING
    target.update(Message.program(ProgramState.READY, TcpAddress("127.0.0.1", 5901)))
    assert target.state is ProgramState.READY and target.description == "wrapped command at 127.0.0.1:5901"
    target.update(Message(Kind.STOP_ACCEPTING))  # not about the program
    assert target.state is ProgramState.READY
    target.update(Message.program(ProgramState.DOWN, None))
    assert target.state is ProgramState.DOWN


def test_a_client_is_refused_at_once_when_the_program_is_down():
    async def connect() -> None:
        target = RemoteTarget(connect_timeout_s=30.0)
        target.update(Message.program(ProgramState.DOWN, None))
        await target.connect(asyncio.Protocol)

    with pytest.raises(TargetUnavailable, match="not running"):
        asyncio.run(asyncio.wait_for(connect(), 5))
