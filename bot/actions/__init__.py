"""Custom actions served by rasa-sdk (``parley serve actions``): thin wrappers over services."""

from bot.actions import handoff, knowledge, language, orders  # noqa: F401 - register actions
