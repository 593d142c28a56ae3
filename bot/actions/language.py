"""Keep the ``language`` slot in step with the language the customer writes in."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from core.config import get_settings
from core.project import project_of
from nlu.patterns import CJK, detect_language


def _without_entities(text: str, entities: list[dict[str, Any]]) -> str:
    """The text minus entity values: an order id alone says nothing about the language."""
    for entity in sorted(entities, key=lambda e: e.get("start", 0), reverse=True):
        start, end = entity.get("start"), entity.get("end")
        if isinstance(start, int) and isinstance(end, int):
            text = text[:start] + " " + text[end:]
    return text


class ActionDetectLanguage(Action):
    """Custom slot mapping action: runs after every user message (action_extract_slots)."""

    def name(self) -> str:
        return "action_detect_language"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        text = latest.get("text") or ""
        if text.startswith("/"):  # a button payload says nothing about the language
            return []
        words = _without_entities(text, latest.get("entities") or [])
        if CJK.search(words) or re.search(r"[A-Za-z]{2,}", words):
            language = detect_language(words)
        else:  # digits or an order id alone: keep the language, or take the widget's locale
            metadata = latest.get("metadata") or {}
            language = tracker.get_slot("language") or metadata.get("locale") or "en"
        project = project_of(get_settings().project)
        if language not in project.languages:  # the project speaks only its own languages
            language = project.default
        if language == tracker.get_slot("language"):
            return []
        return [SlotSet("language", language)]
