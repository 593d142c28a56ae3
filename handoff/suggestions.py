"""Suggested replies for agents, from the knowledge base and the customer's order.

The embedder runs in a thread: it is shared with the embedded worker, which holds it for whole
batches, and the event loop must not wait for it.
"""

from __future__ import annotations

import asyncio

from handoff.schemas import Suggestion
from knowledge.documents.protocol import DocumentIndex
from knowledge.embeddings import Embedder
from knowledge.protocol import CompanyStore
from knowledge.safety import without_instructions


async def suggestions(*, store: CompanyStore, index: DocumentIndex, embedder: Embedder,
                      last_customer_text: str | None, slots: dict[str, object],
                      language: str, limit: int = 4) -> list[Suggestion]:
    """The order the customer asked about, then help-centre passages matching what the
    customer last wrote, in the customer's language."""
    found: list[Suggestion] = []
    order_id = slots.get("order_id")
    if isinstance(order_id, str) and (order := store.get_order(order_id)):
        items = ", ".join(i.name.get(language) or i.name.get("en", i.sku) for i in order.items)
        when = order.eta or order.delivered_on or order.placed_on
        found.append(Suggestion(title=f"Order {order.id}", source_id=f"order:{order.id}",
                                text=f"{order.id} ({items}): {order.status}, {when}"
                                     + (f", {order.carrier} {order.tracking}"
                                        if order.tracking else "")))
    if last_customer_text:
        vectors = await asyncio.to_thread(embedder.embed, [last_customer_text], query=True)
        vector = vectors[0].tolist()
        seen: set[str] = set()
        for hit in await index.search(last_customer_text, vector=vector, k=8, lang=language):
            if hit.chunk.doc_id in seen:
                continue
            seen.add(hit.chunk.doc_id)
            text, _ = without_instructions(hit.chunk.text)
            if text.strip():
                found.append(Suggestion(title=hit.chunk.title, text=text.strip(),
                                        source_id=hit.chunk.doc_id))
            if len(found) >= limit:
                break
    return found[:limit]
