"""Custom actions served by rasa-sdk (``parley serve actions``): thin wrappers over services."""

from bot.actions import handoff, knowledge, orders  # noqa: F401 - register actions
from bot.actions.tracing import instrument

instrument()  # a span per action run (off unless an OTLP endpoint is set)
