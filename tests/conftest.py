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


@pytest.fixture
def echo_proxy(echo_server):
    with running_proxy("127.0.0.1:0", echo_server.address) as proxy:
        yield proxy
