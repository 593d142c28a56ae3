"""Order tracking: the order form's validation and the status answer.

The answer names the products as the graph has them; when the graph store fails (its server
down), it names them as the order has them, so the customer still gets the status.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.deps import company_store, graph, language_of
from knowledge.graph.errors import GraphError
from knowledge.products import get_product
from knowledge.protocol import Order, OrderItem

logger = logging.getLogger(__name__)

ORDER_ID = re.compile(r"^PL-\d{6}$")

STATUS_TEXT = {
    "processing": ("It's being prepared and should ship soon; expected delivery {eta}.",
                   "正在备货，预计 {eta} 送达。"),
    "shipped": ("It's on its way with {carrier} (tracking {tracking}); expected delivery {eta}.",
                "已由 {carrier} 发出（运单号 {tracking}），预计 {eta} 送达。"),
    "delivered": ("It was delivered on {delivered_on}.", "已于 {delivered_on} 送达。"),
    "cancelled": ("It was cancelled; you were not charged.", "该订单已取消，未产生扣款。"),
    "returned": ("It was returned; a refund of EUR {refund_amount} was issued on {refund_date}.",
                 "该订单已退货，{refund_amount} 欧元退款已于 {refund_date} 退回。"),
}


def normalise_order_id(value: str) -> str:
    compact = re.sub(r"[\s#]", "", value).upper()
    match = re.fullmatch(r"PL-?(\d{6})", compact)
    return f"PL-{match.group(1)}" if match else compact


def status_text(order: Order, language: str) -> str:
    en, zh = STATUS_TEXT.get(order.status, ("Status: {status}.", "状态：{status}。"))
    refund = order.refund or {}
    return (zh if language == "zh" else en).format(
        eta=order.eta or "-", carrier=order.carrier or "-", tracking=order.tracking or "-",
        delivered_on=order.delivered_on or "-", status=order.status,
        refund_amount=refund.get("amount", "-"), refund_date=refund.get("issued_on", "-"))


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


class ValidateOrderStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_order_status_form"

    async def validate_order_id(self, slot_value: Any, dispatcher: CollectingDispatcher,
                                tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        candidate = normalise_order_id(str(slot_value or ""))
        if ORDER_ID.match(candidate):
            return {"order_id": candidate}
        dispatcher.utter_message(response="utter_invalid_order_id", order_id=str(slot_value))
        return {"order_id": None}


class ActionOrderStatus(Action):
    def name(self) -> str:
        return "action_order_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        language = language_of(tracker)
        order_id = tracker.get_slot("order_id")
        order = company_store().get_order(order_id) if order_id else None
        if order is None:
            dispatcher.utter_message(response="utter_order_not_found", order_id=order_id or "")
            return []
        items = ", ".join([f"{item.qty} × {await product_name(item, language)}"
                           for item in order.items])
        dispatcher.utter_message(response="utter_order_status", order_id=order.id, items=items,
                                 status_text=status_text(order, language))
        return []
