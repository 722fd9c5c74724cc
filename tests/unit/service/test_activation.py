"""service/activation.py: sockets passed by systemd (sd_listen_fds(3)), read from the environment."""
from __future__ import annotations

import os

import pytest

from websockify.service.activation import ACTIVATION_VARIABLES, activated, take_listen_fds


@pytest.fixture
def environment(monkeypatch):
    for name in ACTIVATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_(pid: int | str, fds: str, names: str | None = None) -> None:
        monkeypatch.setenv("LISTEN_PID", str(pid))
        monkeypatch.setenv("LISTEN_FDS", fds)
        if names is not None:
            monkeypatch.setenv("LISTEN_FDNAMES", names)
    return set_


def test_not_activated_without_the_variables(environment):
    assert activated() is False
    assert take_listen_fds() == []


@pytest.mark.parametrize("fds, expected", [("2", True), ("1", True), ("0", False), ("", False)])
def test_activated_when_sockets_are_passed_to_this_process(environment, fds, expected):
    environment(os.getpid(), fds)
    assert activated() is expected
    assert all(name in os.environ for name in ("LISTEN_PID", "LISTEN_FDS"))  # asking leaves them


def test_sockets_meant_for_another_process_are_not_ours(environment):
    environment(os.getpid() + 1, "2")
    assert activated() is False
    assert take_listen_fds() == []
    assert not any(name in os.environ for name in ACTIVATION_VARIABLES)  # and no child takes them


def test_take_returns_descriptors_from_3_with_their_names(environment):
    environment(os.getpid(), "3", "web:")
    assert take_listen_fds() == [(3, "web"), (4, "unknown"), (5, "unknown")]
    assert not any(name in os.environ for name in ACTIVATION_VARIABLES)


def test_a_count_that_is_not_a_number_passes_nothing(environment):
    environment(os.getpid(), "two")
    assert take_listen_fds() == []
    assert not any(name in os.environ for name in ACTIVATION_VARIABLES)
