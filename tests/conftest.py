import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
from helpers import TcpServer, echo_handler, running_proxy  # noqa: E402


@pytest.fixture
def echo_server():
    server = TcpServer(echo_handler)
    yield server
    server.close()


@pytest.fixture(params=["auto", "asyncio"])
def echo_proxy(request, echo_server):
    """The proxy in front of an echo server, on uvloop (when installed) and on the stdlib loop."""
    with running_proxy("127.0.0.1:0", echo_server.address,
                       env={"WEBSOCKIFY_EVENT_LOOP": request.param}) as proxy:
        yield proxy


@pytest.fixture(params=["auto", "asyncio"])
def echo_proxy_loop(request):
    """Each event loop websockify can run on: uvloop when installed, and the stdlib's."""
    return request.param
