"""What the bot's actions may ask of the company's knowledge."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Policy:
    id: str
    title: dict[str, str]
    text: dict[str, str]


@dataclass(frozen=True)
class Product:
    sku: str
    name: dict[str, str]
    description: dict[str, str]
    price: float
    warranty_months: int
    returnable: bool
    aliases: tuple[str, ...] = field(default_factory=tuple)


class CompanyStore(Protocol):
    """Orders, products and policies of the company the bot serves."""

    def get_order(self, order_id: str) -> Order | None: ...

    def get_policy(self, policy_id: str) -> Policy | None: ...

    def find_product(self, name: str) -> Product | None: ...
