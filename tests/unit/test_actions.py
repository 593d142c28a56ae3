"""Custom actions run as coroutines against the demo company: its orders in the embedded
company store, its products and policies in a graph loaded from the same YAML (the store the
entity editor writes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.handoff import ActionHandoff
from bot.actions.knowledge import ActionAnswerFromKnowledge
from bot.actions.orders import ActionOrderStatus, ValidateOrderStatusForm
from knowledge.answer import Answer

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("company_graph")]


def tracker(*, text: str = "", intent: str | None = None, slots: dict[str, Any] | None = None,
            entities: list[dict[str, Any]] | None = None, metadata: dict | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0},
              "entities": entities or [], "metadata": metadata or {}}
    return Tracker("c1", {"language": "en", **(slots or {})}, latest, [], False, None,
                   {"name": None}, "action_listen")


async def run(action, t: Tracker) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, {})
    return dispatcher.messages, events


@pytest.mark.parametrize(("value", "expected"), [("pl 204817", "PL-204817"),
                                                 ("PL204817", "PL-204817"),
                                                 ("#PL-204817", "PL-204817")])
async def test_order_form_normalises_valid_ids(value, expected):
    dispatcher = CollectingDispatcher()
    result = await ValidateOrderStatusForm().validate_order_id(value, dispatcher, tracker(), {})
    assert result == {"order_id": expected}
    assert dispatcher.messages == []


@pytest.mark.parametrize("value", ["12345", "PL-12", "AB-204817", "PL-2048170"])
async def test_order_form_rejects_bad_ids_and_says_why(value):
    dispatcher = CollectingDispatcher()
    result = await ValidateOrderStatusForm().validate_order_id(value, dispatcher, tracker(), {})
    assert result == {"order_id": None}
    assert dispatcher.messages[0]["response"] == "utter_invalid_order_id"


async def test_order_status_reads_the_order():
    messages, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "PL-204817",
                                                                "email": "anna.lee@example.com"}))
    (message,) = messages
    assert message["response"] == "utter_order_status"
    assert "DHL" in message["status_text"] and message["order_id"] == "PL-204817"


async def test_order_status_in_chinese():
    messages, _ = await run(ActionOrderStatus(),
                            tracker(slots={"order_id": "PL-310552", "language": "zh",
                                          "email": "li.wei@example.com"}))
    assert "送达" in messages[0]["status_text"]


async def test_order_status_names_the_products_as_the_graph_has_them(company_graph):
    from knowledge.articles.entities import apply_upsert

    await apply_upsert(company_graph, {  # what the entity editor's task writes
        "label": "Product", "key": "NH-BL-200", "props": {"name": {"en": "Blender 200 Classic"}},
        "edges": [], "replace_edges": False})
    messages, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "PL-204817",
                                                                "email": "anna.lee@example.com"}))
    assert messages[0]["items"] == "1 × Blender 200 Classic"


async def test_order_status_names_the_products_as_ordered_when_the_graph_fails(company_graph,
                                                                               caplog):
    from bot.actions.deps import company_store

    await company_graph.close()  # the real store, now failing as it does when its database is gone
    messages, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "PL-204817",
                                                                "email": "anna.lee@example.com"}))
    assert messages[0]["response"] == "utter_order_status"
    order = company_store().get_order("PL-204817")
    assert order is not None and order.items[0].name["en"] == "Nimbus PowerBlend 200 Blender"
    assert messages[0]["items"] == "1 × Nimbus PowerBlend 200 Blender"  # as it was ordered
    (record,) = [r for r in caplog.records if r.name == "bot.actions.orders"]
    assert record.levelname == "WARNING" and "graph_unavailable" in record.getMessage()


async def test_unknown_order_is_reported():
    messages, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "PL-000000",
                                                                "email": "anna.lee@example.com"}))
    assert messages[0]["response"] == "utter_order_not_found"


@pytest.fixture
async def knowledge(tmp_path, company_graph):  # type: ignore[no-untyped-def]
    """The action's answerer over a small real knowledge base and the company graph."""
    from bot.actions import deps
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.documents.embedded import SQLiteDocumentIndex
    from knowledge.embeddings import E5Embedder
    from knowledge.ingest import import_path
    from tests.unit.test_knowledge_answers import RETURNS, RETURNS_ZH

    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "r.md").write_text(RETURNS)
    (tmp_path / "kb" / "r-zh.md").write_text(RETURNS_ZH)
    index = SQLiteDocumentIndex(tmp_path / "d.db")
    await import_path(tmp_path / "kb", index=index, embedder=E5Embedder())
    previous, deps._answerer = deps._answerer, KnowledgeAnswerer(
        index=index, embedder=E5Embedder(), graph=company_graph)
    yield
    deps._answerer = previous
    await index.close()


async def test_knowledge_answer_is_cited(knowledge):
    messages, _ = await run(ActionAnswerFromKnowledge(), tracker(
        text="can I return an opened blender?", intent="return_policy",
        entities=[{"entity": "product", "value": "blender"}]))
    text, payload = messages
    assert "14 days" in (text["text"] or ""), messages
    assert payload["custom"]["citations"][0]["source_id"] == "returns-opened"


async def test_knowledge_answer_in_chinese(knowledge):
    messages, _ = await run(ActionAnswerFromKnowledge(), tracker(
        text="破壁机拆开了还能退吗？", intent="return_policy", slots={"language": "zh"}))
    assert "14 天" in messages[0]["text"]


async def test_unanswerable_questions_abstain_and_offer_a_person(knowledge):
    messages, _ = await run(ActionAnswerFromKnowledge(), tracker(
        text="who won the football world cup?", intent="nlu_fallback"))
    assert messages[0]["response"] == "utter_no_answer"
    assert messages[1]["custom"]["abstained"] is True
    oos, _ = await run(ActionAnswerFromKnowledge(), tracker(
        text="what's the weather in Paris?", intent="out_of_scope"))
    assert oos[0]["response"] == "utter_out_of_scope"


class AskedAbout:
    """An answerer that records which graph nodes the action asked about, and abstains."""

    def __init__(self) -> None:
        self.nodes: list[tuple[str, str]] = []

    async def answer(self, question: str, *, lang: str = "en",
                     graph_nodes: Sequence[tuple[str, str]] = (), topic: str | None = None,
                     on_sentence: Any = None) -> Answer:
        self.nodes = list(graph_nodes)
        return Answer("", [], True, "no_sources")

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("value", "sku"), [("blender", "NH-BL-200"), ("破壁机", "NH-BL-200"),
                                            ("Nimbus Aura Electric Kettle 1.7 L", "NH-KT-170"),
                                            ("hovercraft", None)])
async def test_the_product_the_customer_names_is_found_in_the_graph(value, sku, monkeypatch):
    from bot.actions import deps

    asked = AskedAbout()
    monkeypatch.setattr(deps, "_answerer", asked)
    await run(ActionAnswerFromKnowledge(), tracker(
        text=f"tell me about the {value}", intent="product_info",
        entities=[{"entity": "product", "value": value}]))
    assert asked.nodes == ([("Product", sku)] if sku else [])


async def test_a_product_saved_in_the_entity_editor_is_found_from_the_chat(company_graph,
                                                                            monkeypatch):
    from bot.actions import deps
    from knowledge.articles.entities import apply_upsert, upsert_payload
    from knowledge.articles.schemas import EntityUpsert

    body = EntityUpsert.model_validate({
        "props": {"name": {"en": "Nimbus Frost Ice Maker"}, "aliases": ["ice maker"]},
        "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns"}]})
    # The editor's request builds the payload; the upsert_entity task applies it.
    payload = await upsert_payload(company_graph, label="Product", key="NH-IM-900", data=body)
    await apply_upsert(company_graph, payload)
    asked = AskedAbout()
    monkeypatch.setattr(deps, "_answerer", asked)
    await run(ActionAnswerFromKnowledge(), tracker(
        text="can I return the ice maker?", intent="return_policy",
        entities=[{"entity": "product", "value": "Ice Maker"}]))
    assert asked.nodes == [("Product", "NH-IM-900")]


async def test_handoff_action_emits_the_control_payload():
    messages, events = await run(ActionHandoff(), tracker(intent="request_human"))
    assert messages[0]["response"] == "utter_handoff"
    assert messages[1]["custom"] == {"handoff": {"reason": "customer_request"}}
    assert events[0]["name"] == "handoff_requested" and events[0]["value"] is True

