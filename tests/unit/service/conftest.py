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


@pytest.fixture
def deep_traceback_record():
    """make(message): an ERROR record "deep" of a RuntimeError(message) raised 400 frames down."""
    def make(message: str) -> logging.LogRecord:
        def ping(n: int) -> None:  # two functions in turn: Python folds only a frame repeated in a row
            if n == 0:
                raise RuntimeError(message)
            pong(n - 1)

        def pong(n: int) -> None:
            ping(n - 1)

        try:
            ping(400)
        except RuntimeError as exc:
            return logging.LogRecord("websockify.test", logging.ERROR, __file__, 1, "deep", None,
                                     (type(exc), exc, exc.__traceback__))
        raise AssertionError("ping(400) returned")
    return make
