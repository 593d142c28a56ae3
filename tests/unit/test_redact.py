"""``analytics.redact``: personal data masked in exported customer text."""

from __future__ import annotations

import pytest

from core.redact import redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "expected"), [
    ("mail me at jo.doe+tag@mail.example.co.uk please", "mail me at [email] please"),
    ("where is PL-204817?", "where is [order]?"),
    ("订单PL-310552还没到", "订单[order]还没到"),
    ("order pl204817", "order [order]"),
    ("card 4111 1111 1111 1111 expires soon", "card [card] expires soon"),
    ("4111-1111-1111-1111", "[card]"),
    ("5500000000000004", "[card]"),
    ("call +1 (415) 555-0132 after 5", "call [phone] after 5"),
    ("tel. 030 1234567.", "tel. [phone]."),
    ("我的电话13812345678", "我的电话[phone]"),
    ("+86 138 1234 5678", "[phone]"),
])
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "can I return an opened blender within 14 days?",
    "order 12345",  # too short to be a phone number, not an order id
    "the 2024 model costs 199.99",
    "delivered on 2026-03-01",
    "我想退货",
    "",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_several_kinds_in_one_message() -> None:
    text = "I'm ann@example.com, order PL-123456, card 4000 0566 5566 5556, phone 0151 2345678"
    assert redact(text) == "I'm [email], order [order], card [card], phone [phone]"
