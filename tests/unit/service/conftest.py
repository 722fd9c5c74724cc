"""Fixtures of the service tests."""
import logging

import pytest

from websockify.service.logs import TRAFFIC_LOGGER


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads, logging.logMultiprocessing,
             logging.getLogger("websockets").level, logging.getLogger(TRAFFIC_LOGGER).level)
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging._srcfile, logging.logThreads, logging.logMultiprocessing = saved[2:5]
    logging.getLogger("websockets").setLevel(saved[5])
    logging.getLogger(TRAFFIC_LOGGER).setLevel(saved[6])
