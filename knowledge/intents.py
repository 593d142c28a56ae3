"""Which company policy answers which customer intent."""

from __future__ import annotations

POLICY_FOR_INTENT = {
    "return_policy": "returns",
    "refund_status": "refunds",
    "shipping_info": "shipping",
    "warranty": "warranty",
    "payment_methods": "payments",
    "account_help": "account",
    "cancel_order": "cancellation",
}
