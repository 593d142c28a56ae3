"""Order tracking: the order form's validation and the status answer, for the order's owner only.

Who may see an order's status:
- a **verified customer** (the host site signed their identity, ``core.customers``; the API
  puts it in the ``verified_customer`` slot when the conversation is created): the order must
  be theirs, and the form asks only for the number;
- anyone else must give the order number **and** the email on the order; both are compared
  case-insensitively in constant time.

"No such order" and "not your order" get the same reply, so order numbers cannot be probed.
Each failed look-up counts (``order_lookup_failures``); after ``MAX_FAILED_LOOKUPS`` the form
stops asking and offers a person. The form checks each pair as it is given, so the customer can
correct it at once; ``action_order_status`` checks again before it answers and counts every
failure recorded in the conversation, also before a restart of the dialogue.

The answer says what the customer needs (items, status, carrier, tracking), never the payment
method, totals or address. It names the products as the graph has them; when the graph store
fails (its server down), as the order has them, so the customer still gets the status.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.deps import company_store, graph, language_of
from core.config import get_settings
from core.customers import VERIFIED_CUSTOMER_SLOT
from core.order_ids import OrderIds
from core.project import order_ids_of
from core.security import same
from knowledge.graph.errors import GraphError
from knowledge.products import get_product
from knowledge.protocol import Order, OrderItem

logger = logging.getLogger(__name__)

EMAIL = re.compile(r"[^\s@<>()\[\],;:\"'“”‘’（），；：]{1,64}@[^\s@<>()\[\],;:\"'“”‘’（），；：]+"
                   r"\.[A-Za-z]{2,63}")
MAX_FAILED_LOOKUPS = 5
FAILURES = "order_lookup_failures"
NO_EMAIL = "\x00no order\x00"  # compared against when there is no order, to take as long

STATUS_TEXT = {
    "processing": ("It's being prepared and should ship soon; expected delivery {eta}.",
                   "正在备货，预计 {eta} 送达。"),
    "shipped": ("It's on its way with {carrier} (tracking {tracking}); expected delivery {eta}.",
                "已由 {carrier} 发出（运单号 {tracking}），预计 {eta} 送达。"),
    "delivered": ("It was delivered on {delivered_on}.", "已于 {delivered_on} 送达。"),
    "cancelled": ("It was cancelled; you were not charged.", "该订单已取消，未产生扣款。"),
    "returned": ("It was returned and refunded on {refund_date}.",
                 "该订单已退货，退款已于 {refund_date} 退回。"),
}


def order_ids() -> OrderIds:
    """The project's order id format (``orders:`` in parley.yml)."""
    return order_ids_of(get_settings().project)


def status_text(order: Order, language: str) -> str:
    """The order's status for its owner: no payment method, amount or address."""
    en, zh = STATUS_TEXT.get(order.status, ("Status: {status}.", "状态：{status}。"))
    refund = order.refund or {}
    return (zh if language == "zh" else en).format(
        eta=order.eta or "-", carrier=order.carrier or "-", tracking=order.tracking or "-",
        delivered_on=order.delivered_on or "-", status=order.status,
        refund_date=refund.get("issued_on", "-"))


async def product_name(item: OrderItem, language: str) -> str:
    """The product's name as the graph has it now (the editor may have renamed it), else the
    name the order was placed under (also when the graph store fails)."""
    try:
        product = await get_product(graph(), item.sku)
    except GraphError as exc:
        logger.warning("product %s: the graph failed (%s), using the order's name",
                       item.sku, exc.code)
        product = None
    names = product.name if product is not None else item.name
    return names.get(language) or names.get("en") or item.sku


def verified_customer(tracker: Tracker) -> dict[str, str] | None:
    """The identity the host site vouched for (``{"email"?, "customer_id"?}``), or None."""
    value = tracker.get_slot(VERIFIED_CUSTOMER_SLOT)
    if not isinstance(value, dict):
        return None
    identity = {k: v for k, v in value.items()
                if k in ("email", "customer_id") and isinstance(v, str) and v}
    return identity or None


def failed_lookups(tracker: Tracker) -> int:
    """Failed look-ups in this conversation: the most any ``order_lookup_failures`` event
    ever recorded (a restart of the dialogue resets the slot, not its history)."""
    values = [tracker.get_slot(FAILURES)]
    values += [e.get("value") for e in tracker.events
               if e.get("event") == "slot" and e.get("name") == FAILURES]
    return max((int(v) for v in values if isinstance(v, int | float)), default=0)


def _same_email(expected: str, given: str) -> bool:
    return same(expected.strip().casefold(), given.strip().casefold())


async def _customer_email(customer_id: str) -> str | None:
    """The email of a customer the host site named by id (the company graph's Customer)."""
    try:
        node = await graph().get("Customer", customer_id)
    except GraphError as exc:
        logger.warning("verified customer: the graph failed (%s)", exc.code)
        return None
    email = node.props.get("email") if node is not None else None
    return email if isinstance(email, str) and email else None


async def owns(order: Order | None, *, email: str | None,
               identity: dict[str, str] | None) -> bool:
    """Whether the customer may see ``order``: the verified identity's, or the given email's.
    Takes as long for a missing order as for someone else's."""
    expected = order.customer_email if order is not None else NO_EMAIL
    if identity is not None:
        claimed = identity.get("email")
        if claimed is None and "customer_id" in identity:
            claimed = await _customer_email(identity["customer_id"])
        given = claimed or ""
    else:
        given = email or ""
    matches = _same_email(expected, given)
    return order is not None and bool(expected) and bool(given) and matches


class ValidateOrderStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_order_status_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        if failed_lookups(tracker) >= MAX_FAILED_LOOKUPS:
            return []  # the form ends at once; action_order_status offers a person
        if verified_customer(tracker) is not None:
            return [slot for slot in domain_slots if slot != "email"]
        return domain_slots

    async def validate_order_id(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        ids = order_ids()
        candidate = ids.normalise(str(slot_value or ""))
        if ids.valid(candidate):
            return {"order_id": candidate}
        dispatcher.utter_message(response="utter_invalid_order_id", order_id=str(slot_value))
        return {"order_id": None}

    async def validate_email(self, slot_value: Any, dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        found = EMAIL.search(str(slot_value or ""))
        if found:
            return {"email": found.group(0).lower()}
        dispatcher.utter_message(response="utter_invalid_email")
        return {"email": None}

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> list[EventType]:
        """Each slot's format, then, once the form has all it asks for, the order's owner:
        a wrong pair is forgotten and counted, and the form asks again (or, at the limit,
        stops)."""
        events = await super().get_validation_events(dispatcher, tracker, domain)
        required = await self.required_slots(self.domain_slots(domain), dispatcher, tracker,
                                             domain)
        if not required or any(tracker.slots.get(slot) is None for slot in required):
            return events
        order_id, email = tracker.get_slot("order_id"), tracker.get_slot("email")
        order = company_store().get_order(order_id)
        if await owns(order, email=email, identity=verified_customer(tracker)):
            return events
        dispatcher.utter_message(response="utter_order_not_found")
        failed = [SlotSet("order_id", None), SlotSet("email", None),
                  SlotSet(FAILURES, float(failed_lookups(tracker) + 1))]
        tracker.slots.update({e["name"]: e["value"] for e in failed})
        return [*events, *failed]


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        language = language_of(tracker)
        forget = [SlotSet("order_id", None), SlotSet("email", None)]
        failures = failed_lookups(tracker)
        if failures >= MAX_FAILED_LOOKUPS:
            dispatcher.utter_message(response="utter_order_lookup_locked")
            return forget
        order_id = tracker.get_slot("order_id")
        identity = verified_customer(tracker)
        email = tracker.get_slot("email")
        if not order_id or (identity is None and not email):
            # Run without the form (a project's own rule): the form asks for what is missing.
            return [FollowupAction("order_status_form")]
        order = company_store().get_order(order_id)
        allowed = await owns(order, email=email, identity=identity)  # as long when missing
        if order is None or not allowed:
            failures += 1
            dispatcher.utter_message(response=("utter_order_lookup_locked"
                                               if failures >= MAX_FAILED_LOOKUPS
                                               else "utter_order_not_found"))
            return [*forget, SlotSet(FAILURES, float(failures))]
        items = ", ".join([f"{item.qty} × {await product_name(item, language)}"
                           for item in order.items])
        dispatcher.utter_message(response="utter_order_status", order_id=order.id, items=items,
                                 status_text=status_text(order, language))
        return []  # ownership proven: the order stays in context (the agent sees it too)
