"""Rasa's logs keep no customer text: tracebacks are withheld, Rasa's DEBUG records dropped."""

from __future__ import annotations

import io
import logging

import pytest

from bot.components.rasa_logging import NoMessageText

pytestmark = pytest.mark.unit


def test_a_traceback_that_quotes_the_tracker_is_withheld() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(NoMessageText())
    logger = logging.getLogger("rasa.core.processor.test")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        try:
            raise RuntimeError('action server said: {"text": "my card 4111 1111 1111 1111"}')
        except RuntimeError:
            logger.exception("Encountered an exception while running action '%s'.", "x")
        logging.getLogger("rasa.core.processor.test").debug("Received user message 'secret'")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "Encountered an exception while running action 'x'" in written
    assert "RuntimeError" in written
    assert "4111" not in written and "secret" not in written
