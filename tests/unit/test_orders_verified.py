"""Only an order's owner sees its status; nobody can probe order numbers; knowledge answers
never quote a customer's records.

The order form runs as Rasa runs it: each customer turn's slot candidates go to
``validate_order_status_form``, Rasa asks for the next missing slot, and when the form ends
``action_order_status`` answers, against the demo company's orders in the embedded company
store and its products and customers in a graph loaded from the same YAML.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.knowledge import ActionAnswerFromKnowledge
from bot.actions.orders import MAX_FAILED_LOOKUPS, ActionOrderStatus, ValidateOrderStatusForm
from core.config import DEMO_PROJECT, Settings
from core.customers import CustomerIdentity, mint_customer_token, verify_customer_token
from core.errors import Unauthorized
from knowledge.graph.embedded import SQLiteGraphStore
from web.app import create_app

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("company_graph")]

DOMAIN = yaml.safe_load((DEMO_PROJECT / "dialogue" / "domain.yml").read_text(encoding="utf-8"))
FORM = "order_status_form"
REQUIRED = DOMAIN["forms"][FORM]["required_slots"]
KEY = "site-signing-key-for-unit-tests-0123456789"
NOT_FOUND = [{"response": "utter_order_not_found"}, {"response": "utter_ask_order_id"}]


class OrderChat:
    """One conversation's order look-ups, as Rasa drives the form and the action."""

    def __init__(self, *, verified: dict[str, str] | None = None, language: str = "en") -> None:
        self.slots: dict[str, Any] = {"language": language, "order_id": None, "email": None,
                                      "requested_slot": None, "order_lookup_failures": 0.0,
                                      "verified_customer": verified}
        self.events: list[dict[str, Any]] = []

    def tracker(self, tail: list[dict[str, Any]], *, loop: str | None) -> Tracker:
        latest = {"text": "", "intent": {"name": "inform", "confidence": 1.0}, "entities": []}
        return Tracker("c1", dict(self.slots), latest, [*self.events, *tail], False, None,
                       {"name": loop}, "action_listen")

    def apply(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.events.append(event)
            if event.get("event") == "slot":
                self.slots[event["name"]] = event["value"]

    async def say(self, **candidates: Any) -> list[dict[str, Any]]:
        """A customer turn inside (or starting) the form: what the bot replies."""
        extracted = [SlotSet(name, value) for name, value in candidates.items()]
        self.apply(extracted)
        dispatcher = CollectingDispatcher()
        tail = [{"event": "action", "name": FORM}, *extracted]
        events = await ValidateOrderStatusForm().run(dispatcher, self.tracker(tail, loop=FORM),
                                                     DOMAIN)
        self.apply(events)
        messages = [_plain(m) for m in dispatcher.messages]
        requested = [e["value"] for e in events
                     if e.get("event") == "slot" and e["name"] == "requested_slot"]
        # Rasa's FormAction: the validation action's choice, else the first missing slot.
        ask = requested[0] if requested else next(
            (slot for slot in REQUIRED if self.slots.get(slot) is None), None)
        self.slots["requested_slot"] = ask
        if ask:
            return [*messages, {"response": f"utter_ask_{ask}"}]
        done = CollectingDispatcher()  # the form is done: "submit the order form"
        self.apply(await ActionOrderStatus().run(done, self.tracker([], loop=None), {}))
        return [*messages, *(_plain(m) for m in done.messages)]


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A dispatched message without its empty fields, as a reply to compare."""
    return {k: v for k, v in message.items()
            if v not in (None, [], {}, "") and k != "template"}  # "template": old "response"


async def test_anonymous_customer_with_the_right_email_gets_the_status():
    chat = OrderChat()
    assert await chat.say() == [{"response": "utter_ask_order_id"}]
    assert await chat.say(order_id="pl 204817") == [{"response": "utter_ask_email"}]
    (status,) = await chat.say(email="my email is Anna.Lee@Example.com")
    assert status["response"] == "utter_order_status" and status["order_id"] == "PL-204817"
    assert status["items"] == "1 × Nimbus PowerBlend 200 Blender"
    assert "DHL" in status["status_text"] and "00340434161094012345" in status["status_text"]
    # Only what the customer needs: no payment method, totals or address.
    said = json.dumps(status, ensure_ascii=False)
    assert not any(word in said for word in ("visa", "89.9", "DE", "EUR", "total"))
    # Ownership proven: the order stays in context, for the customer and for an agent.
    assert chat.slots["order_id"] == "PL-204817"


async def test_a_refund_is_told_without_its_amount():
    chat = OrderChat(language="zh")
    await chat.say(order_id="PL-118734")
    (status,) = await chat.say(email="chen.jing@example.com")
    assert "已取消" in status["status_text"] and "72.8" not in json.dumps(status)


async def test_wrong_email_gets_the_same_reply_as_an_unknown_order():
    wrong_email, unknown_order = OrderChat(), OrderChat()
    await wrong_email.say(order_id="PL-204817")
    await unknown_order.say(order_id="PL-999999")
    assert await wrong_email.say(email="li.wei@example.com") == NOT_FOUND
    assert await unknown_order.say(email="anna.lee@example.com") == NOT_FOUND
    # Neither number nor email is kept: the form asks for both again.
    assert wrong_email.slots["order_id"] is None and wrong_email.slots["email"] is None
    assert wrong_email.slots["order_lookup_failures"] == 1


async def test_order_number_and_email_in_one_message():
    chat = OrderChat()
    (status,) = await chat.say(order_id="PL-310552", email="li.wei@example.com")
    assert status["response"] == "utter_order_status"


async def test_a_bad_email_is_asked_again_and_does_not_count():
    chat = OrderChat()
    await chat.say(order_id="PL-204817")
    assert await chat.say(email="anna at example") == [{"response": "utter_invalid_email"},
                                                        {"response": "utter_ask_email"}]
    assert chat.slots["order_id"] == "PL-204817" and chat.slots["order_lookup_failures"] == 0


async def test_after_five_failed_lookups_the_form_stops_and_offers_a_person():
    chat = OrderChat()
    for attempt in range(1, MAX_FAILED_LOOKUPS):
        await chat.say(order_id=f"PL-00000{attempt}")
        assert await chat.say(email="anna.lee@example.com") == NOT_FOUND
    await chat.say(order_id="PL-000005")
    locked = await chat.say(email="anna.lee@example.com")
    assert locked == [{"response": "utter_order_not_found"},
                      {"response": "utter_order_lookup_locked"}]
    (offer,) = [r for r in DOMAIN["responses"]["utter_order_lookup_locked"]
                if "condition" not in r]
    assert offer["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    # The form no longer asks, even for the right pair: no answer tells right from wrong.
    assert await chat.say() == [{"response": "utter_order_lookup_locked"}]
    assert await chat.say(order_id="PL-204817", email="anna.lee@example.com") == \
        [{"response": "utter_order_lookup_locked"}]


async def test_the_action_counts_failures_the_dialogue_forgot():
    """A restart of the dialogue resets the slot, not the conversation's history."""
    chat = OrderChat()
    chat.apply([SlotSet("order_lookup_failures", float(MAX_FAILED_LOOKUPS)),
                {"event": "restart"}, SlotSet("order_lookup_failures", 0.0),
                SlotSet("order_id", "PL-204817"), SlotSet("email", "anna.lee@example.com")])
    dispatcher = CollectingDispatcher()
    await ActionOrderStatus().run(dispatcher, chat.tracker([], loop=None), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_order_lookup_locked"]


async def test_the_action_checks_the_owner_itself():
    """A project's own rule may run the action without the form: it checks, and counts."""
    chat = OrderChat()
    chat.apply([SlotSet("order_id", "PL-204817"), SlotSet("email", "li.wei@example.com")])
    dispatcher = CollectingDispatcher()
    events = await ActionOrderStatus().run(dispatcher, chat.tracker([], loop=None), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_order_not_found"]
    assert SlotSet("order_lookup_failures", 1.0) in events
    missing = OrderChat()
    missing.apply([SlotSet("order_id", "PL-204817")])
    dispatcher = CollectingDispatcher()
    events = await ActionOrderStatus().run(dispatcher, missing.tracker([], loop=None), {})
    assert dispatcher.messages == [] and events[0]["name"] == FORM  # the form asks


async def test_verified_customer_gets_the_status_without_being_asked_the_email():
    chat = OrderChat(verified={"email": "anna.lee@example.com"})
    assert await chat.say() == [{"response": "utter_ask_order_id"}]
    (status,) = await chat.say(order_id="PL-845513")
    assert status["response"] == "utter_order_status" and status["order_id"] == "PL-845513"
    # Someone else's order: the same reply as an unknown one.
    assert await chat.say(order_id="PL-310552") == NOT_FOUND


async def test_verified_by_customer_id():
    chat = OrderChat(verified={"customer_id": "C-1002"})
    (status,) = await chat.say(order_id="PL-310552")
    assert status["response"] == "utter_order_status"
    assert await chat.say(order_id="PL-204817") == NOT_FOUND


async def test_a_verified_customer_id_unknown_to_the_graph_sees_nothing():
    chat = OrderChat(verified={"customer_id": "C-9999"})
    assert await chat.say(order_id="PL-204817") == NOT_FOUND


# ---- the customer token: minted by the host site, verified at conversation creation ----

def readme_python_recipe(secret: str, claims: dict[str, Any]) -> str:
    """README, "Verified customers": what a site writes, with nothing but the standard
    library."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(sig)


def test_the_readme_recipe_mints_a_token_parley_accepts():
    token = readme_python_recipe(KEY, {"email": "Anna.Lee@example.com",
                                       "exp": int(time.time()) + 3600})
    assert verify_customer_token(token, key=KEY) == CustomerIdentity(email="anna.lee@example.com")
    by_id = readme_python_recipe(KEY, {"customer_id": "C-1002", "exp": int(time.time()) + 60})
    assert verify_customer_token(by_id, key=KEY).as_dict() == {"customer_id": "C-1002"}


@pytest.mark.parametrize(("token", "code"), [
    (mint_customer_token(CustomerIdentity(email="anna.lee@example.com"), key=KEY, ttl_s=-1),
     "customer_token_expired"),
    (mint_customer_token(CustomerIdentity(email="anna.lee@example.com"), key="another-site"),
     "customer_token_invalid"),
    (readme_python_recipe(KEY, {"email": "anna.lee@example.com",
                                "exp": int(time.time()) + 30 * 24 * 3600}),
     "customer_token_invalid"),  # too long-lived
    # Made at collection: hours of validity, so a long suite never sees them expire instead.
    (readme_python_recipe(KEY, {"exp": int(time.time()) + 6 * 3600}), "customer_token_invalid"),
    (readme_python_recipe(KEY, {"email": "anna.lee@example.com"}), "customer_token_invalid"),
    (readme_python_recipe(KEY, {"email": "not-an-email", "exp": int(time.time()) + 6 * 3600}),
     "customer_token_invalid"),
    ("e30.e30.", "customer_token_invalid"),
    ("not a token", "customer_token_invalid"),
    ("ü.ü.ü", "customer_token_invalid"),
])
def test_bad_tokens_are_refused_with_a_stable_code(token, code):
    with pytest.raises(Unauthorized) as refused:
        verify_customer_token(token, key=KEY)
    assert refused.value.code == code


def test_an_unsigned_token_is_refused():
    """``alg: none`` with the signature of the empty key is still not ours."""
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(json.dumps(
        {"email": "anna.lee@example.com", "exp": int(time.time()) + 60}).encode()
    ).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        verify_customer_token(f"{header}.{claims}.", key=KEY)


def stored_identities(client: TestClient) -> dict[str, Any]:
    """Each stored conversation's ``customer_identity``, by id."""
    from sqlalchemy import select

    from conversations.models import Conversation

    async def read() -> dict[str, Any]:
        async with client.app.state.maker() as session:  # type: ignore[attr-defined]
            rows = await session.execute(select(Conversation.id, Conversation.customer_identity))
            return dict(rows.tuples().all())

    assert client.portal is not None
    return client.portal.call(read)


@pytest.fixture
def signing_client(settings: Settings, dialogue: Any) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"customer_signing_key": SecretStr(KEY)})
    with TestClient(create_app(configured, dialogue=dialogue)) as test_client:
        yield test_client


def test_a_signed_token_makes_a_verified_conversation(signing_client, dialogue):
    token = mint_customer_token(CustomerIdentity(email="anna.lee@example.com"), key=KEY)
    response = signing_client.post("/api/v1/conversations",
                                   json={"locale": "en", "customer_token": token})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["verified_customer"] is True
    # The dialogue knows who it is (the actions read this slot).
    assert dialogue.slots[body["id"]] == {"verified_customer": {"email": "anna.lee@example.com"}}
    anonymous = signing_client.post("/api/v1/conversations", json={"locale": "en"}).json()
    assert anonymous["verified_customer"] is False and anonymous["id"] not in dialogue.slots
    assert stored_identities(signing_client) == {
        body["id"]: {"email": "anna.lee@example.com"}, anonymous["id"]: None}


@pytest.mark.parametrize(("token", "status", "code"), [
    (mint_customer_token(CustomerIdentity(email="anna.lee@example.com"), key=KEY, ttl_s=-5),
     401, "customer_token_expired"),
    (mint_customer_token(CustomerIdentity(email="anna.lee@example.com"), key="forged"),
     401, "customer_token_invalid"),
    ("x" * 5000, 422, "validation_error"),
])
def test_an_expired_or_forged_token_creates_nothing(signing_client, dialogue, token, status,
                                                    code):
    response = signing_client.post("/api/v1/conversations", json={"customer_token": token})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert dialogue.slots == {} and stored_identities(signing_client) == {}


def test_without_a_signing_key_customer_tokens_are_refused(client, dialogue):
    token = mint_customer_token(CustomerIdentity(email="anna.lee@example.com"), key=KEY)
    response = client.post("/api/v1/conversations", json={"customer_token": token})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "customer_tokens_disabled"


def test_when_the_dialogue_cannot_take_the_customer_nothing_is_stored(signing_client,
                                                                      dialogue):
    dialogue.fail = True
    token = mint_customer_token(CustomerIdentity(customer_id="C-1001"), key=KEY)
    response = signing_client.post("/api/v1/conversations", json={"customer_token": token})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dialogue_unavailable"
    assert stored_identities(signing_client) == {}


# ---- knowledge answers never quote a customer's records ----

@pytest.fixture
async def payments_kb(tmp_path: Path, company_graph: SQLiteGraphStore) -> AsyncIterator[None]:
    """The action's answerer over the demo's payments and returns articles and the graph."""
    from bot.actions import deps
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.documents.embedded import SQLiteDocumentIndex
    from knowledge.embeddings import E5Embedder
    from knowledge.ingest import import_path

    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("payment-methods.md", "returns-opened-appliances.md"):
        (kb / name).write_text((DEMO_PROJECT / "kb" / "en" / name).read_text(encoding="utf-8"))
    index = SQLiteDocumentIndex(tmp_path / "d.db")
    await import_path(kb, index=index, embedder=E5Embedder())
    previous, deps._answerer = deps._answerer, KnowledgeAnswerer(
        index=index, embedder=E5Embedder(), graph=company_graph)
    yield
    deps._answerer = previous
    await index.close()


async def test_payment_question_after_an_order_id_is_answered_from_the_article(payments_kb):
    latest = {"text": "what payment methods do you accept?",
              "intent": {"name": "payment_methods", "confidence": 1.0}, "entities": []}
    tracker = Tracker("c1", {"language": "en", "order_id": "PL-310552"}, latest, [], False,
                      None, {"name": None}, "action_listen")
    dispatcher = CollectingDispatcher()
    await ActionAnswerFromKnowledge().run(dispatcher, tracker, {})
    text, payload = dispatcher.messages
    cited = [c["source_id"] for c in payload["custom"]["citations"]]
    assert cited and all(not c.startswith("graph:") for c in cited), cited
    assert "payment-methods" in cited
    assert not any(fact in text["text"] for fact in ("PL-310552", "payment method", "198.9"))


async def test_order_and_customer_facts_never_become_sources(company_graph, tmp_path):
    from knowledge.answer import KnowledgeAnswerer
    from knowledge.documents.embedded import SQLiteDocumentIndex
    from knowledge.embeddings import E5Embedder

    index = SQLiteDocumentIndex(tmp_path / "empty.db")
    answerer = KnowledgeAnswerer(index=index, embedder=E5Embedder(), graph=company_graph)
    sources = await answerer.retrieve(
        "tell me about it", lang="en",
        graph_nodes=[("Order", "PL-204817"), ("Customer", "C-1001"), ("Product", "NH-BL-200")])
    assert sources, "the product's own facts remain"
    text = "\n".join(f"{s.source_id} {s.text}" for s in sources)
    assert "PL-" not in text and "C-10" not in text and "anna" not in text.lower()
    assert {s.source_id for s in sources} == {"graph:Product:NH-BL-200"}
    await index.close()
