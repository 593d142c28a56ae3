"""Policy and product answers from the company store (grounded generation replaces these)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.deps import company_store, language_of
from knowledge.intents import POLICY_FOR_INTENT


def _citation(policy_id: str, title: str, text: str) -> dict[str, str]:
    return {"source_id": f"policy:{policy_id}", "title": title, "snippet": text[:200]}


class ActionAnswerPolicy(Action):
    def name(self) -> str:
        return "action_answer_policy"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        language = language_of(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        policy = company_store().get_policy(POLICY_FOR_INTENT.get(intent or "", ""))
        if policy is None:
            dispatcher.utter_message(response="utter_default")
            return []
        title = policy.title.get(language) or policy.title["en"]
        body = (policy.text.get(language) or policy.text["en"]).strip()
        dispatcher.utter_message(response="utter_policy", title=title, body=body,
                                 json_message={"citations": [_citation(policy.id, title, body)]})
        return []


class ActionAnswerProduct(Action):
    def name(self) -> str:
        return "action_answer_product"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        language = language_of(tracker)
        names = [e.get("value") for e in tracker.latest_message.get("entities", [])
                 if e.get("entity") == "product"] or [tracker.get_slot("product")]
        product = next((p for n in names if n and (p := company_store().find_product(n))), None)
        if product is None:
            dispatcher.utter_message(response="utter_product_unknown")
            return []
        dispatcher.utter_message(
            response="utter_product_info",
            name=product.name.get(language) or product.name["en"],
            description=(product.description.get(language) or product.description.get("en", "")),
            price=f"{product.price:.2f}", warranty_months=product.warranty_months)
        return []
