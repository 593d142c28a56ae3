"""Keep customer text out of Rasa's logs (installed when Rasa loads Parley's channel).

Parley's own logs never carry message text; Rasa's can, in two ways: a traceback logged with
``logger.exception`` (an action-server failure's exception may quote the request, i.e. the
tracker with every message), and DEBUG records that print user messages. This filter, on every
handler of the root logger, replaces a record's traceback with the exception's type and drops
Rasa's DEBUG records unless ``PARLEY_LOG_MESSAGE_TEXT=true``.
"""

from __future__ import annotations

import logging
import os


class NoMessageText(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG and record.name.startswith("rasa"):
            return False
        if record.exc_info and record.exc_info[0] is not None:
            kind = record.exc_info[0].__name__
            record.msg = f"{record.getMessage()} [{kind}; traceback withheld: it may quote " \
                         "customer text]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def install(root: logging.Logger | None = None) -> None:
    if os.environ.get("PARLEY_LOG_MESSAGE_TEXT", "").lower() in {"1", "true", "yes"}:
        return
    root = root or logging.getLogger()
    guard = NoMessageText()
    root.addFilter(guard)
    for handler in root.handlers:
        handler.addFilter(guard)


install()
