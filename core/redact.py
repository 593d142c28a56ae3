"""Mask personal data in customer text: in exports, in analytics (answer facts keep the
question redacted; the audit shows agents' replies redacted) and, where configured, in the
question a generator is sent.

``redact`` replaces e-mail addresses, order ids in the project's format (``orders:`` in
parley.yml, ``core.order_ids``: the demo's ``PL-123456``), card numbers (13–19 digits,
spaces or dashes allowed between them) and phone numbers (7 or more digits, with ``+``,
spaces, dots, dashes or brackets) by a tag such as ``[email]``. It errs towards masking: any
long run of digits is hidden, whether or not it is a valid card or phone number.
"""

from __future__ import annotations

import re

from core.order_ids import OrderIds

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# ASCII look-arounds: Chinese text puts digits right after letters that ``\b`` counts as word.
CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d-])")
PHONE = re.compile(r"(?<![A-Za-z0-9+])\+?\(?\d[\d ().-]{5,}\d(?!\d)")
DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}")


def _project_order_ids() -> OrderIds:
    from core.config import get_settings
    from core.project import order_ids_of

    return order_ids_of(get_settings().project)


def _phone(match: re.Match[str]) -> str:
    found = match[0]
    if DATE.fullmatch(found.strip()) or sum(c.isdigit() for c in found) < 7:
        return found
    return "[phone]"


def redact(text: str, order_ids: OrderIds | None = None) -> str:
    """``order_ids``: the format to mask (default: the configured project's)."""
    text = EMAIL.sub("[email]", text)
    text = (order_ids or _project_order_ids()).masking.sub("[order]", text)
    text = CARD.sub("[card]", text)
    return PHONE.sub(_phone, text)
