"""What the bot's actions and the agents' console may ask of the company's order records.

Products and policies are not here: they live in the company graph (``knowledge.products``,
``knowledge.graph``), where the entity editor changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OrderItem:
    sku: str
    name: dict[str, str]
    qty: int


@dataclass(frozen=True)
class Order:
    id: str
    status: str
    placed_on: str
    items: tuple[OrderItem, ...]
    total: float
    customer_email: str
    carrier: str | None = None
    tracking: str | None = None
    eta: str | None = None
    delivered_on: str | None = None
    refund: dict[str, object] | None = None


class CompanyStore(Protocol):
    """Orders of the company the bot serves, with their customer's email."""

    def get_order(self, order_id: str) -> Order | None:
        """The order (its id trimmed, any case), or ``None``."""
        ...
