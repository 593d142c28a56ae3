"""Mark the conversation for a human: the web API turns the control payload into a hand-off."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        dispatcher.utter_message(response="utter_handoff")
        dispatcher.utter_message(json_message={"handoff": {"reason": "customer_request"}})
        return [SlotSet("handoff_requested", True)]
