"""Grounded answers from the knowledge base (documents and graph facts)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.deps import answerer, graph, language_of, stream_partial
from knowledge.products import find_product

# The knowledge-base tag for what the customer asked about (see the articles' front matter).
TOPIC_FOR_INTENT = {
    "return_policy": "returns", "refund_status": "refunds", "shipping_info": "shipping",
    "warranty": "warranty", "payment_methods": "payment", "account_help": "account",
    "cancel_order": "cancellation", "product_info": "care",
}


class ActionAnswerFromKnowledge(Action):
    """Answer from documents and graph facts, every sentence checked against its sources;
    when the sources do not support an answer, say so and offer a person.

    The custom payload after the reply carries the citations (or the abstention) and the
    answer's ``audit`` (``conversations.data.AnswerAudit``), which the API stores with it."""

    def name(self) -> str:
        return "action_answer_from_knowledge"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        language = language_of(tracker)
        question = tracker.latest_message.get("text") or ""
        # Products only: an order is never an answer source (``knowledge.answer.PRIVATE_LABELS``).
        nodes: list[tuple[str, str]] = []
        for entity in tracker.latest_message.get("entities", []):
            if entity.get("entity") == "product":
                product = await find_product(graph(), str(entity.get("value")))
                if product:
                    nodes.append(("Product", product.sku))

        async def partial(sentence: str) -> None:
            await stream_partial(tracker.sender_id, sentence)

        intent = (tracker.latest_message.get("intent") or {}).get("name")
        answer = await answerer().answer(question, lang=language, graph_nodes=nodes,
                                         topic=TOPIC_FOR_INTENT.get(intent or ""),
                                         on_sentence=partial)
        if answer.abstained:
            response = "utter_out_of_scope" if intent == "out_of_scope" else "utter_no_answer"
            dispatcher.utter_message(response=response)
            dispatcher.utter_message(json_message={"abstained": True, "reason": answer.reason,
                                                   "audit": answer.audit()})
            return []
        dispatcher.utter_message(text=answer.text)
        dispatcher.utter_message(json_message={"citations": answer.citations,
                                               "generator": answer.generator,
                                               "audit": answer.audit()})
        return []
