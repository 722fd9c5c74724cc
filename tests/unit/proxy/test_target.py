"""Connecting to the target: each failure says what went wrong in words."""
import asyncio
import socket

import pytest

from websockify.addresses import TcpAddress
from websockify.errors import TargetUnavailable
from websockify.proxy.target import AddressConnector


def test_an_unknown_host_is_reported_as_not_resolving(monkeypatch):
    """getaddrinfo's EAI_* codes are not errno values: os.strerror(-2) says 'Unknown error -2'."""
    def no_such_name(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)  # asyncio's resolver calls it in a thread
    connector = AddressConnector(TcpAddress("nosuchhost.invalid", 5900), timeout_s=30)
    with pytest.raises(TargetUnavailable) as error:
        asyncio.run(connector.connect(asyncio.Protocol))
    assert str(error.value) == "cannot resolve target host 'nosuchhost.invalid': Name or service not known"
