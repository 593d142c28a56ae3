"""Logging with the conversation id in a ContextVar; customer text stays out of logs."""

from __future__ import annotations

import logging
from contextvars import ContextVar

conversation_id_var: ContextVar[str] = ContextVar("conversation_id", default="-")


class _ConversationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.conversation_id = conversation_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_ConversationFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [conv=%(conversation_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access logs carry URLs only (no bodies), but keep them quiet by default.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # Request lines can carry tokens in query strings (Rasa's HTTP API): keep them out.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def redact(text: str, *, enabled: bool) -> str:
    """What a log line may say about customer text: the text itself only when enabled."""
    return text if enabled else f"<{len(text)} chars>"
