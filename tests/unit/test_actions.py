"""Custom actions run as coroutines against the demo company's embedded store."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.handoff import ActionHandoff
from bot.actions.knowledge import ActionAnswerPolicy, ActionAnswerProduct
from bot.actions.language import ActionDetectLanguage
from bot.actions.orders import ActionOrderStatus, ValidateOrderStatusForm

pytestmark = pytest.mark.unit


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
    messages, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "PL-204817"}))
    (message,) = messages
    assert message["response"] == "utter_order_status"
    assert "DHL" in message["status_text"] and message["order_id"] == "PL-204817"


async def test_order_status_in_chinese():
    messages, _ = await run(ActionOrderStatus(),
                            tracker(slots={"order_id": "PL-310552", "language": "zh"}))
    assert "送达" in messages[0]["status_text"]


async def test_unknown_order_is_reported():
    messages, _ = await run(ActionOrderStatus(), tracker(slots={"order_id": "PL-000000"}))
    assert messages[0]["response"] == "utter_order_not_found"


async def test_policy_answer_carries_its_citation():
    messages, _ = await run(ActionAnswerPolicy(), tracker(intent="return_policy"))
    (message,) = messages
    assert "30 days" in message["body"]
    assert message["custom"]["citations"][0]["source_id"] == "policy:returns"


async def test_product_answer_finds_chinese_aliases():
    messages, _ = await run(ActionAnswerProduct(), tracker(
        intent="product_info", slots={"language": "zh"},
        entities=[{"entity": "product", "value": "破壁机"}]))
    assert "破壁" in messages[0]["name"]


async def test_handoff_action_emits_the_control_payload():
    messages, events = await run(ActionHandoff(), tracker(intent="request_human"))
    assert messages[0]["response"] == "utter_handoff"
    assert messages[1]["custom"] == {"handoff": {"reason": "customer_request"}}
    assert events[0]["name"] == "handoff_requested" and events[0]["value"] is True


@pytest.mark.parametrize(("text", "entities", "current", "expected"), [
    ("你好", [], "en", "zh"),
    ("hello", [], "zh", "en"),
    ("PL-204817", [{"start": 0, "end": 9}], "zh", None),  # an id alone keeps the language
    ("12345", [], "zh", None),
    ("/request_human", [], "zh", None),
])
async def test_language_follows_what_the_customer_writes(text, entities, current, expected):
    _, events = await run(ActionDetectLanguage(),
                          tracker(text=text, entities=entities, slots={"language": current}))
    assert events == ([] if expected is None else [{"event": "slot", "timestamp": None,
                                                    "name": "language", "value": expected}])
