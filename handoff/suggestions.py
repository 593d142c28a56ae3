"""Suggested replies for agents, from the company's knowledge."""

from __future__ import annotations

from handoff.schemas import Suggestion
from knowledge.intents import POLICY_FOR_INTENT as KNOWLEDGE_POLICIES
from knowledge.protocol import CompanyStore

POLICY_FOR_INTENT = {**KNOWLEDGE_POLICIES, "order_status": "shipping"}


def suggestions(store: CompanyStore, *, intents: list[str], slots: dict[str, object],
                language: str) -> list[Suggestion]:
    """Policies behind the customer's recent intents, the order they asked about, newest first."""
    found: list[Suggestion] = []
    order_id = slots.get("order_id")
    if isinstance(order_id, str) and (order := store.get_order(order_id)):
        items = ", ".join(i.name.get(language) or i.name.get("en", i.sku) for i in order.items)
        when = order.eta or order.delivered_on or order.placed_on
        found.append(Suggestion(title=f"Order {order.id}", source_id=f"order:{order.id}",
                                text=f"{order.id} ({items}): {order.status}, {when}"
                                     + (f", {order.carrier} {order.tracking}"
                                        if order.tracking else "")))
    seen: set[str] = set()
    for intent in reversed(intents):
        policy_id = POLICY_FOR_INTENT.get(intent)
        if not policy_id or policy_id in seen:
            continue
        seen.add(policy_id)
        policy = store.get_policy(policy_id)
        if policy:
            found.append(Suggestion(title=policy.title.get(language) or policy.title["en"],
                                    text=(policy.text.get(language) or policy.text["en"]).strip(),
                                    source_id=f"policy:{policy.id}"))
    return found[:4]
